/**
 * Result views: JSON pretty-printed, DataFrames as a sortable table with CSV
 * download, ndarrays as a table or line plot, Datasets and DataArrays as a
 * summary with a map preview and a .nc download.
 */

import { decodeBase64 } from "../dasf/base64";
import type { BinaryValue } from "../dasf/client";
import { type Child, download, el, message } from "./dom";
import { type Cell, type Table, decodeFrame, decodeNdArray, isFrame, isNdArray, toCsv } from "./frames";
import { type MapPreview, drawMap } from "./map";
import { type NcFile, readAll, readNetcdf, timeLabels } from "./netcdf";
import { linePlot } from "./plot";

/** The map preview last drawn (tests and the benchmark read it). */
export let lastMap: MapPreview | undefined;

function fmt(c: Cell): string {
  if (c === null) return "";
  if (typeof c === "number") return Number.isInteger(c) ? String(c) : String(Number(c.toPrecision(7)));
  return String(c);
}

/** A sortable table (click a header to sort by it). */
export function tableView(table: Table, name: string): HTMLElement {
  let order = table.rows.map((_, i) => i);
  let sortCol = -2;
  let asc = true;
  const tbody = el("tbody");
  const render = () => {
    tbody.replaceChildren(
      ...order.map((r) => el("tr", {}, el("th", { scope: "row" }, fmt(table.index[r] ?? null)), ...table.rows[r]!.map((c) => el("td", {}, fmt(c))))),
    );
  };
  const headers = [table.indexName || "", ...table.columns].map((label, i) => {
    const th = el("th", { scope: "col", class: "sortable", title: "sort" }, label);
    th.addEventListener("click", () => {
      const col = i - 1;
      asc = sortCol === col ? !asc : true;
      sortCol = col;
      const key = (r: number): Cell => (col < 0 ? (table.index[r] ?? null) : (table.rows[r]![col] ?? null));
      order = order.slice().sort((a, b) => {
        const x = key(a);
        const y = key(b);
        if (x === y) return 0;
        if (x === null) return 1;
        if (y === null) return -1;
        const cmp = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
        return asc ? cmp : -cmp;
      });
      headers.forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      render();
    });
    return th;
  });
  render();
  const button = el("button", { type: "button", "data-testid": "csv-download" }, "download CSV");
  button.addEventListener("click", () => download(`${name}.csv`, toCsv(table), "text/csv"));
  return el(
    "div",
    { class: "table-result" },
    el("div", { class: "summary" }, `${table.rows.length} rows × ${table.columns.length} columns `, button),
    el("div", { class: "table-wrap" }, el("table", { class: "data-table", "data-testid": "result-table" }, el("thead", {}, el("tr", {}, ...headers)), tbody)),
  );
}

function ndarrayView(value: unknown): HTMLElement {
  const arr = decodeNdArray(value);
  const numbers = arr.values.map((v) => (typeof v === "number" ? v : typeof v === "boolean" ? Number(v) : NaN));
  const parts: Child[] = [el("div", { class: "summary" }, `ndarray ${arr.dtype}, shape (${arr.shape.join(", ")})`)];
  if (arr.shape.length === 1 && arr.values.length > 1) parts.push(linePlot(numbers, { title: "values by index" }));
  if (arr.shape.length <= 2 && arr.values.length <= 5000) {
    const cols = arr.shape.length === 2 ? arr.shape[1]! : 1;
    const rows = arr.shape.length === 2 ? arr.shape[0]! : arr.values.length;
    const table: Table = {
      columns: Array.from({ length: cols }, (_, i) => String(i)),
      index: Array.from({ length: rows }, (_, i) => i),
      indexName: "",
      rows: Array.from({ length: rows }, (_, r) => arr.values.slice(r * cols, (r + 1) * cols)),
    };
    parts.push(tableView(table, "array"));
  }
  return el("div", { class: "ndarray-result" }, ...parts);
}

function attrText(value: string | number | number[]): string {
  return Array.isArray(value) ? value.join(", ") : String(value);
}

function datasetSummary(file: NcFile, kind: string): HTMLElement {
  const coordNames = new Set(file.variables.filter((v) => v.dims.length === 1 && v.dims[0] === v.name).map((v) => v.name));
  const dims = el("p", { "data-testid": "dataset-dims" }, `${kind} — dimensions: ${file.dims.map((d) => `${d.name} (${d.size})`).join(", ") || "none"}`);
  const rows = file.variables.map((v) =>
    el(
      "tr",
      {},
      el("td", {}, v.name),
      el("td", {}, coordNames.has(v.name) ? "coordinate" : "data"),
      el("td", {}, `(${v.dims.join(", ")})`),
      el("td", {}, v.type),
      el("td", {}, Object.entries(v.attrs).map(([k, a]) => `${k}: ${attrText(a)}`).join("; ")),
    ),
  );
  const vars = el(
    "table",
    { class: "data-table", "data-testid": "dataset-variables" },
    el("thead", {}, el("tr", {}, el("th", {}, "variable"), el("th", {}, "kind"), el("th", {}, "dimensions"), el("th", {}, "type"), el("th", {}, "attributes"))),
    el("tbody", {}, ...rows),
  );
  const attrs = el(
    "dl",
    { class: "attrs", "data-testid": "dataset-attrs" },
    ...Object.entries(file.attrs).flatMap(([k, a]) => [el("dt", {}, k), el("dd", {}, attrText(a))]),
  );
  // the CF / crs findings a Demap client cares about
  const findings: string[] = [];
  const conventions = file.attrs["Conventions"];
  findings.push(typeof conventions === "string" ? `Conventions: ${conventions}` : "no Conventions attribute (CF not declared)");
  const crs = file.attrs["crs"];
  findings.push(typeof crs === "string" ? `crs: ${crs}` : "no global crs attribute (Demap needs one, e.g. EPSG:4326)");
  findings.push(file.version === 1 ? "NetCDF3 classic" : file.version === 2 ? "NetCDF3 64-bit offset" : `NetCDF version ${file.version}`);
  return el(
    "div",
    { class: "dataset-summary" },
    dims,
    el("ul", { class: "findings", "data-testid": "dataset-findings" }, ...findings.map((f) => el("li", {}, f))),
    vars,
    Object.keys(file.attrs).length ? el("details", { open: "" }, el("summary", {}, "attributes"), attrs) : null,
  );
}

function timeSeriesPlot(file: NcFile): HTMLElement | null {
  // a 1-D data variable along a time (or other) coordinate: a line plot
  const v = file.variables.find((x) => x.dims.length === 1 && x.dims[0] !== x.name && x.type !== "char");
  if (!v) return null;
  const coord = file.variables.find((x) => x.name === v.dims[0] && x.dims.length === 1);
  const ys = Array.from(readAll(file, v));
  const xLabels = coord ? timeLabels(coord, readAll(file, coord)) : undefined;
  return linePlot(ys, { xLabels, title: `${v.name} along ${v.dims[0]}`, testid: "series-plot" });
}

function netcdfView(bytes: Uint8Array, kind: string, name: string, onStatus: (text: string) => void): HTMLElement {
  const box = el("div", { class: "dataset-result" });
  const button = el("button", { type: "button", "data-testid": "nc-download" }, "download .nc");
  button.addEventListener("click", () => download(`${name}.nc`, bytes.slice(), "application/x-netcdf"));
  box.append(el("div", { class: "summary" }, `${kind}, ${bytes.length.toLocaleString("en")} bytes of NetCDF `, button));
  let file: NcFile;
  try {
    file = readNetcdf(bytes);
  } catch (exc) {
    box.append(message("error", `cannot read the ${kind}: ${exc instanceof Error ? exc.message : String(exc)}`, "map-error"));
    return box;
  }
  box.append(datasetSummary(file, kind));
  const series = timeSeriesPlot(file);
  if (series) box.append(series);
  const mapBox = el("div", { class: "map-box" });
  box.append(mapBox);
  // the map needs its container laid out: draw once the view is in the page
  queueMicrotask(() => {
    try {
      lastMap?.dispose();
      lastMap = drawMap(file, mapBox, onStatus);
    } catch (exc) {
      lastMap = undefined;
      const text = exc instanceof Error ? exc.message : String(exc);
      mapBox.append(message(series ? "info" : "warning", `no map preview: ${text}`, "map-error"));
    }
  });
  return box;
}

/**
 * The view of `value`, the result of a function whose return schema marks
 * its type with `x-dasf-type`.
 */
export function resultView(value: unknown, xType: string, name: string, onStatus: (text: string) => void = () => undefined): HTMLElement {
  const binary = value as BinaryValue;
  if (typeof value === "object" && value !== null && binary.data instanceof Uint8Array && typeof binary.mediaType === "string") {
    const kind = /xarray=DataArray/.test(binary.mediaType) ? "DataArray" : "Dataset";
    if (/zarr/.test(binary.mediaType)) return message("warning", `the result is ${binary.mediaType}; the dashboard shows NetCDF results only`);
    return netcdfView(binary.data, kind, name, onStatus);
  }
  if ((xType === "xarray.Dataset" || xType === "xarray.DataArray") && typeof value === "string") {
    let bytes: Uint8Array;
    try {
      bytes = decodeBase64(value);
    } catch (exc) {
      return message("error", `the ${xType} result is not base64 NetCDF: ${String(exc)}`);
    }
    return netcdfView(bytes, xType.split(".")[1]!, name, onStatus);
  }
  if (isFrame(value)) {
    try {
      return tableView(decodeFrame(value), name);
    } catch (exc) {
      return el("div", {}, message("error", `cannot read the table: ${String(exc)}`), jsonView(value));
    }
  }
  if (xType === "numpy.ndarray" || isNdArray(value)) {
    try {
      return ndarrayView(value);
    } catch (exc) {
      return el("div", {}, message("error", `cannot read the array: ${String(exc)}`), jsonView(value));
    }
  }
  return jsonView(value);
}

/** JSON, pretty-printed. */
export function jsonView(value: unknown): HTMLElement {
  return el("pre", { class: "json", "data-testid": "result-json" }, JSON.stringify(value, null, 2));
}
