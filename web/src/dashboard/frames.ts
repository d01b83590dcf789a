/**
 * Decoding dasf_geo's JSON forms of tables and arrays: `dasf-frame/1`
 * DataFrames and `{dtype, shape, data}` ndarrays (raw little-endian bytes).
 */

import { decodeBase64 } from "../dasf/base64";

export type Cell = string | number | boolean | null;

export interface Table {
  columns: string[];
  index: Cell[];
  indexName: string;
  rows: Cell[][];
}

export interface NdArray {
  dtype: string;
  shape: number[];
  values: Cell[];
}

/** Numbers from raw little-endian bytes of numpy dtype `dtype` (e.g. `<f8`, `|b1`). */
const UNIT_MS: Record<string, number> = { s: 1000, ms: 1, us: 1e-3, ns: 1e-6, m: 60000, h: 3600000, D: 86400000 };
const NAT = -9223372036854775808;

/** ISO text of int64 counts of `unit` since 1970 (NaT is null); without "Z" unless `utc`. */
function datetimes(counts: Cell[], unit: string, utc: boolean): Cell[] {
  const ms = UNIT_MS[unit] ?? 1e-6;
  return counts.map((x) => {
    if (typeof x !== "number" || x === NAT) return null;
    const iso = new Date(x * ms).toISOString();
    if (utc) return iso.replace(".000Z", "Z");
    return iso.replace("T00:00:00.000Z", "").replace(".000Z", "").replace("Z", "");
  });
}

export function numbersFromBytes(dtype: string, bytes: Uint8Array): Cell[] {
  const dt = /^[<>|=]?([Mm])8\[(\w+)\]$/.exec(dtype);
  if (dt) {
    const counts = numbersFromBytes(`${dtype[0] === ">" ? ">" : "<"}i8`, bytes);
    if (dt[1] === "M") return datetimes(counts, dt[2]!, false);
    return counts.map((x) => (typeof x === "number" && x !== NAT ? `${x} ${dt[2]}` : null));
  }
  const m = /^([<>|=]?)([fiub])(\d+)$/.exec(dtype);
  if (!m) throw new Error(`unsupported dtype ${dtype}`);
  const little = m[1] !== ">";
  const kind = m[2]!;
  const size = Number(m[3]);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Math.floor(bytes.byteLength / size);
  const out: Cell[] = new Array<Cell>(n);
  for (let i = 0; i < n; i++) {
    const p = i * size;
    if (kind === "f") out[i] = size === 8 ? view.getFloat64(p, little) : size === 4 ? view.getFloat32(p, little) : NaN;
    else if (kind === "b") out[i] = bytes[p] !== 0;
    else if (size === 1) out[i] = kind === "i" ? view.getInt8(p) : view.getUint8(p);
    else if (size === 2) out[i] = kind === "i" ? view.getInt16(p, little) : view.getUint16(p, little);
    else if (size === 4) out[i] = kind === "i" ? view.getInt32(p, little) : view.getUint32(p, little);
    else if (size === 8) out[i] = Number(kind === "i" ? view.getBigInt64(p, little) : view.getBigUint64(p, little));
    else throw new Error(`unsupported dtype ${dtype}`);
  }
  return out;
}

type Column = Record<string, unknown>;

/** The cells of one `dasf-frame/1` column. */
export function decodeColumn(col: Column): Cell[] {
  switch (col["kind"]) {
    case "numpy":
      return numbersFromBytes(String(col["dtype"]), decodeBase64(String(col["data"])));
    case "datetime": {
      const counts = numbersFromBytes("<i8", decodeBase64(String(col["data"])));
      const dtype = String(col["dtype"]);
      const unit = /\[(\w+)/.exec(dtype)?.[1] ?? "ns";
      return datetimes(counts, unit, /,/.test(dtype));
    }
    case "masked": {
      const values = numbersFromBytes(String(col["dtype"]).toLowerCase().startsWith("boolean") ? "|b1" : dtypeOfMasked(String(col["dtype"])), decodeBase64(String(col["data"])));
      const mask = decodeBase64(String(col["mask"]));
      return values.map((v, i) => (mask[i] ? null : v));
    }
    case "categorical": {
      const categories = decodeColumn(col["categories"] as Column);
      const codes = decodeColumn(col["codes"] as Column);
      return codes.map((c) => (typeof c === "number" && c >= 0 ? (categories[c] ?? null) : null));
    }
    case "values": {
      const values = (col["values"] as Cell[]).slice();
      for (const i of (col["na"] as number[] | undefined) ?? []) values[i] = null;
      return values;
    }
    case "range": {
      const start = Number(col["start"]);
      const stop = Number(col["stop"]);
      const step = Number(col["step"] ?? 1);
      const out: Cell[] = [];
      for (let x = start; step > 0 ? x < stop : x > stop; x += step) out.push(x);
      return out;
    }
    case "multi": {
      const levels = (col["levels"] as Column[]).map(decodeColumn);
      return levels[0]!.map((_, i) => levels.map((l) => String(l[i])).join(" / "));
    }
    default:
      throw new Error(`unknown column kind ${JSON.stringify(col["kind"])}`);
  }
}

function dtypeOfMasked(dtype: string): string {
  const m = /^(U?)Int(8|16|32|64)$/i.exec(dtype);
  if (m) return `<${m[1] ? "u" : "i"}${Number(m[2]) / 8}`;
  if (/^Float(32|64)$/i.test(dtype)) return `<f${Number(dtype.slice(5)) / 8}`;
  return "<f8";
}

function labels(col: Column): string[] {
  if (col["kind"] === "multi") return decodeColumn(col).map(String);
  return decodeColumn(col).map(String);
}

/** True for the JSON form of a DataFrame. */
export function isFrame(value: unknown): value is Column {
  return typeof value === "object" && value !== null && (value as Column)["format"] === "dasf-frame/1";
}

/** Decode a `dasf-frame/1` object into a table. */
export function decodeFrame(frame: Column): Table {
  const columns = labels(frame["columns"] as Column);
  const index = decodeColumn(frame["index"] as Column);
  const data = (frame["data"] as Column[]).map(decodeColumn);
  const rows = index.map((_, r) => data.map((c) => c[r] ?? null));
  const name = (frame["index"] as Column)["name"];
  return { columns, index, indexName: typeof name === "string" ? name : "", rows };
}

/** True for the JSON form of an ndarray. */
export function isNdArray(value: unknown): value is Column {
  return typeof value === "object" && value !== null && "dtype" in value && "shape" in value && "data" in value;
}

/** Decode an ndarray (the `{dtype, shape, data}` form or nested lists). */
export function decodeNdArray(value: unknown): NdArray {
  if (Array.isArray(value)) {
    const shape: number[] = [];
    let v: unknown = value;
    while (Array.isArray(v)) {
      shape.push(v.length);
      v = v[0];
    }
    return { dtype: "list", shape, values: (value as unknown[]).flat(Infinity) as Cell[] };
  }
  const col = value as Column;
  const dtype = String(col["dtype"]);
  return { dtype, shape: (col["shape"] as number[]).slice(), values: numbersFromBytes(dtype, decodeBase64(String(col["data"]))) };
}

/** The table as CSV text. */
export function toCsv(table: Table): string {
  const quote = (c: Cell) => {
    const s = c === null ? "" : String(c);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const lines = [[table.indexName, ...table.columns].map(quote).join(",")];
  table.rows.forEach((row, i) => lines.push([table.index[i] ?? null, ...row].map(quote).join(",")));
  return `${lines.join("\n")}\n`;
}
