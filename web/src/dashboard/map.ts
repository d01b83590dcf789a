/**
 * The map preview: an OpenLayers map in the data's projection with the grid
 * drawn as a colour image, Natural Earth coastlines (world-atlas, shipped with
 * the page), a colour bar, the value under the pointer and a time slider.
 */

import OLMap from "ol/Map";
import Zoom from "ol/control/Zoom";
import View from "ol/View";
import ImageLayer from "ol/layer/Image";
import VectorLayer from "ol/layer/Vector";
import ImageCanvasSource from "ol/source/ImageCanvas";
import VectorSource from "ol/source/Vector";
import GeoJSON from "ol/format/GeoJSON";
import { Stroke, Style } from "ol/style";
import { get as getProjection, type ProjectionLike } from "ol/proj";
import { register } from "ol/proj/proj4";
import type Projection from "ol/proj/Projection";
import proj4 from "proj4";
import { feature } from "topojson-client";
import type { GeometryCollection, Topology } from "topojson-specification";
import land from "world-atlas/land-110m.json";
import { VIRIDIS, drawColorBar, paletteIndex } from "./colormap";
import { type Grid, findGrid, readField } from "./grid";
import type { NcFile } from "./netcdf";
import { el } from "./dom";

/** Largest number of cells drawn; larger grids are shown with a stride. */
export const MAX_DRAWN_CELLS = 4_000_000;

let landSource: VectorSource | undefined;
const landByProjection = new Map<string, VectorSource>();

/**
 * The land outlines as lines, cut where a ring crosses the antimeridian
 * (world-atlas is made for spherical projections: a ring that crosses 180°
 * would otherwise be drawn straight across the map).
 */
function outlineLines(): number[][][] {
  const topology = land as unknown as Topology<{ land: GeometryCollection }>;
  const collection = feature(topology, topology.objects.land);
  const lines: number[][][] = [];
  const polygons: number[][][][] = [];
  for (const f of collection.features) {
    const g = f.geometry;
    if (g.type === "Polygon") polygons.push(g.coordinates);
    else if (g.type === "MultiPolygon") polygons.push(...g.coordinates);
  }
  for (const polygon of polygons) {
    for (const ring of polygon) {
      let line: number[][] = [];
      for (let i = 0; i < ring.length; i++) {
        const p = ring[i]!;
        const prev = ring[i - 1];
        const polar = Math.abs(p[1]!) > 89.9 && prev !== undefined && Math.abs(prev[1]!) > 89.9;
        if (prev && (Math.abs(p[0]! - prev[0]!) > 180 || polar)) {
          if (line.length > 1) lines.push(line);
          line = [];
        }
        line.push([p[0]!, p[1]!]);
      }
      if (line.length > 1) lines.push(line);
    }
  }
  return lines;
}

function coastlines(projection: Projection): VectorSource {
  const code = projection.getCode();
  let source = landByProjection.get(code);
  if (!source) {
    const geojson = { type: "Feature", properties: {}, geometry: { type: "MultiLineString", coordinates: outlineLines() } };
    source = new VectorSource({
      features: new GeoJSON().readFeatures(geojson, {
        dataProjection: "EPSG:4326",
        featureProjection: projection,
      }),
    });
    landByProjection.set(code, source);
  }
  landSource = source;
  return source;
}

/**
 * The OpenLayers projection for a `crs` attribute.
 *
 * @throws Error naming the crs when it cannot be used.
 */
export function projectionFor(crs: string): Projection {
  const text = crs.trim();
  const epsg = /^(?:EPSG|epsg)\s*:\s*(\d+)$/.exec(text) ?? /^urn:ogc:def:crs:EPSG::(\d+)$/i.exec(text);
  if (/^(OGC:)?CRS:?84$/i.test(text)) return getProjection("EPSG:4326")!;
  if (epsg) {
    const code = `EPSG:${epsg[1]}`;
    if (["EPSG:4326", "EPSG:4258", "EPSG:4269", "EPSG:4979"].includes(code)) return getProjection("EPSG:4326")!;
    const known = getProjection(code as ProjectionLike);
    if (known) return known;
    throw new Error(`the map preview does not know the projection ${code}; give the crs as a PROJ string (+proj=...) or use EPSG:4326, EPSG:3857 or a UTM zone`);
  }
  if (text.startsWith("+proj=") || /^(PROJCS|PROJCRS|GEOGCS|GEOGCRS)\[/i.test(text)) {
    const code = `dasf-geo:${text.length}:${text.slice(0, 40)}`;
    if (!getProjection(code)) {
      try {
        proj4.defs(code, text);
      } catch (exc) {
        throw new Error(`cannot read the crs ${JSON.stringify(text.slice(0, 80))}: ${String(exc)}`);
      }
      register(proj4);
    }
    const projection = getProjection(code);
    if (projection) return projection;
  }
  throw new Error(`the map preview cannot use the crs ${JSON.stringify(text.slice(0, 80))}`);
}

/** A drawn map; `setStep` changes the time step shown. */
export interface MapPreview {
  grid: Grid;
  map: OLMap;
  element: HTMLElement;
  step: number;
  setStep(step: number): void;
  /** the screen pixel (relative to the map's viewport) of a data coordinate */
  pixelOf(x: number, y: number): [number, number] | null;
  /** the pixel of a data coordinate in the browser window (as `getBoundingClientRect`) */
  clientPixelOf(x: number, y: number): [number, number] | null;
  setCoastlines(visible: boolean): void;
  /** the value at a data coordinate of the current step, or undefined outside the grid */
  valueAt(x: number, y: number): number | undefined;
  dispose(): void;
}

interface Raster {
  canvas: HTMLCanvasElement;
  /** data extent [minX, minY, maxX, maxY] of the image */
  extent: [number, number, number, number];
}

/** The colour image of one step: one pixel per (strided) cell, north up. */
function rasterize(file: NcFile, grid: Grid, step: number, values?: Float64Array): Raster {
  const field = values ?? readField(file, grid, step);
  const nx = grid.xs.length;
  const ny = grid.ys.length;
  const stride = Math.max(1, Math.ceil(Math.sqrt((nx * ny) / MAX_DRAWN_CELLS)));
  // longitudes beyond 180 are drawn west of the date line, as the coastlines are
  let shift = 0;
  if (grid.kind === "geographic" && grid.dx > 0) {
    const first = grid.xs.findIndex((x) => x >= 180);
    if (first > 0) shift = first;
  }
  const w = Math.ceil(nx / stride);
  const h = Math.ceil(ny / stride);
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d")!;
  const image = ctx.createImageData(w, h);
  const data = image.data;
  const xFlip = grid.dx < 0;
  const yNorthFirst = grid.dy < 0;
  for (let r = 0; r < h; r++) {
    const row = yNorthFirst ? r * stride : ny - 1 - r * stride;
    for (let c = 0; c < w; c++) {
      let col = c * stride;
      if (xFlip) col = nx - 1 - col;
      else if (shift) col = (col + shift) % nx;
      const value = field[row * nx + col]!;
      const p = (r * w + c) * 4;
      if (Number.isNaN(value)) {
        data[p + 3] = 0;
        continue;
      }
      const i = paletteIndex(value, grid.min, grid.max) * 3;
      data[p] = VIRIDIS[i]!;
      data[p + 1] = VIRIDIS[i + 1]!;
      data[p + 2] = VIRIDIS[i + 2]!;
      data[p + 3] = 255;
    }
  }
  ctx.putImageData(image, 0, 0);
  const ax = Math.abs(grid.dx);
  const ay = Math.abs(grid.dy);
  let minX = Math.min(grid.xs[0]!, grid.xs[nx - 1]!) - ax / 2;
  let maxX = Math.max(grid.xs[0]!, grid.xs[nx - 1]!) + ax / 2;
  if (shift) {
    minX = grid.xs[shift]! - 360 - ax / 2;
    maxX = minX + nx * ax;
  }
  const minY = Math.min(grid.ys[0]!, grid.ys[ny - 1]!) - ay / 2;
  const maxY = Math.max(grid.ys[0]!, grid.ys[ny - 1]!) + ay / 2;
  return { canvas, extent: [minX, minY, maxX, maxY] };
}

/**
 * Draw the first map-able variable of `file` into `container`.
 *
 * @throws Error (NoGridError) saying why the Dataset cannot be drawn.
 */
export function drawMap(file: NcFile, container: HTMLElement, onStatus?: (text: string) => void): MapPreview {
  const grid = findGrid(file);
  const projection = projectionFor(grid.crs);
  const v = grid.variable;
  const title = typeof v.attrs["long_name"] === "string" ? (v.attrs["long_name"] as string) : v.name;
  const units = typeof v.attrs["units"] === "string" ? ` [${v.attrs["units"] as string}]` : "";
  const mapDiv = el("div", { class: "map", "data-testid": "map" });
  const hover = el("div", { class: "hover", "data-testid": "map-value" }, "move the pointer over the map");
  const bar = el("canvas", { class: "colorbar", width: "256", height: "14", "data-testid": "colorbar" }) as HTMLCanvasElement;
  drawColorBar(bar);
  const allNaN = Number.isNaN(grid.min);
  const fmt = (x: number) => (Math.abs(x) >= 1e5 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(3) : x.toPrecision(5));
  const legend = el(
    "div",
    { class: "legend" },
    el("span", { "data-testid": "colorbar-min" }, allNaN ? "—" : fmt(grid.min)),
    bar,
    el("span", { "data-testid": "colorbar-max" }, allNaN ? "—" : fmt(grid.max)),
    el("span", { class: "legend-title" }, ` ${title}${units}`),
  );
  const coastToggle = el("input", { type: "checkbox", checked: "", "data-testid": "coastlines-toggle" }) as HTMLInputElement;
  const controls = el("div", { class: "map-controls" }, el("label", {}, coastToggle, " coastlines"));
  const notes: string[] = [];
  if (allNaN) notes.push(`every value of ${v.name} is missing (NaN): nothing to colour`);
  if (grid.fixedDims.length) notes.push(`shown at index 0 of ${grid.fixedDims.join(", ")}`);
  if (grid.irregular) notes.push("the coordinates are not evenly spaced; the preview draws them as a regular grid");
  const nx = grid.xs.length;
  const ny = grid.ys.length;
  const stride = Math.max(1, Math.ceil(Math.sqrt((nx * ny) / MAX_DRAWN_CELLS)));
  if (stride > 1) notes.push(`${ny} x ${nx} cells: every ${stride}th cell is drawn`);
  if (grid.kind === "projected") notes.push(`x/y in ${grid.crs}; coastlines reprojected`);
  const noteDiv = el("div", { class: "notes", "data-testid": "map-notes" }, notes.join("; "));

  let raster = rasterize(file, grid, 0);
  const source = new ImageCanvasSource({
    canvasFunction: (extent, resolution, pixelRatio, size) => {
      const canvas = document.createElement("canvas");
      canvas.width = Math.round(size[0]!);
      canvas.height = Math.round(size[1]!);
      const ctx = canvas.getContext("2d")!;
      ctx.imageSmoothingEnabled = false;
      const [x0, y0, x1, y1] = raster.extent;
      const sx = canvas.width / (extent[2]! - extent[0]!);
      const sy = canvas.height / (extent[3]! - extent[1]!);
      ctx.drawImage(raster.canvas, (x0 - extent[0]!) * sx, (extent[3]! - y1) * sy, (x1 - x0) * sx, (y1 - y0) * sy);
      return canvas;
    },
    projection,
    ratio: 1,
  });
  const gridLayer = new ImageLayer({ source });
  const landLayer = new VectorLayer({
    source: coastlines(projection),
    style: new Style({ stroke: new Stroke({ color: "#d62728", width: 1.2 }) }),
  });
  container.append(legend, controls, mapDiv, hover, noteDiv);
  const map = new OLMap({
    target: mapDiv,
    layers: [gridLayer, landLayer],
    view: new View({ projection, center: [0, 0], zoom: 1 }),
    controls: [new Zoom()],
  });
  const pad = 0;
  map.getView().fit(raster.extent, { padding: [pad, pad, pad, pad], size: map.getSize() ?? [mapDiv.clientWidth, mapDiv.clientHeight] });

  const preview: MapPreview = {
    grid,
    map,
    element: mapDiv,
    step: 0,
    setStep(step: number) {
      preview.step = step;
      raster = rasterize(file, grid, step);
      source.changed();
      map.renderSync();
    },
    pixelOf(x: number, y: number) {
      const pixel = map.getPixelFromCoordinate([x, y]);
      return pixel ? [pixel[0]!, pixel[1]!] : null;
    },
    clientPixelOf(x: number, y: number) {
      const pixel = map.getPixelFromCoordinate([x, y]);
      if (!pixel) return null;
      const rect = (map.getViewport() as HTMLElement | undefined)?.getBoundingClientRect();
      if (!rect) return null;
      return [rect.left + pixel[0]!, rect.top + pixel[1]!];
    },
    setCoastlines(visible: boolean) {
      landLayer.setVisible(visible);
      map.renderSync();
    },
    valueAt(x: number, y: number) {
      let i = Math.round((x - grid.xs[0]!) / grid.dx);
      if (grid.kind === "geographic" && (i < 0 || i >= nx)) i = Math.round((x + 360 - grid.xs[0]!) / grid.dx);
      const j = Math.round((y - grid.ys[0]!) / grid.dy);
      if (i < 0 || i >= nx || j < 0 || j >= ny) return undefined;
      return readField(file, grid, preview.step)[j * nx + i];
    },
    dispose() {
      map.setTarget(undefined);
    },
  };
  let renders = 0;
  map.on("rendercomplete", () => {
    renders += 1;
    mapDiv.dataset["rendered"] = String(renders);
    mapDiv.dataset["renderedAt"] = String(performance.now());
  });
  coastToggle.addEventListener("change", () => preview.setCoastlines(coastToggle.checked));
  if (grid.stepDim && grid.stepLabels.length > 0) {
    const label = el("span", { "data-testid": "time-label" }, `${grid.stepDim} = ${grid.stepLabels[0]}`);
    const slider = el("input", {
      type: "range",
      min: "0",
      max: String(grid.stepLabels.length - 1),
      value: "0",
      "data-testid": "time-slider",
      "aria-label": grid.stepDim,
    }) as HTMLInputElement;
    if (grid.stepLabels.length === 1) slider.disabled = true;
    slider.addEventListener("input", () => {
      const step = Number(slider.value);
      label.textContent = `${grid.stepDim} = ${grid.stepLabels[step]}`;
      preview.setStep(step);
    });
    controls.append(el("label", { class: "slider" }, slider, " ", label));
  }
  map.on("pointermove", (ev) => {
    const [x, y] = ev.coordinate as [number, number];
    const value = preview.valueAt(x, y);
    hover.textContent =
      value === undefined
        ? "outside the grid"
        : `${grid.xName} ${x.toFixed(2)}, ${grid.yName} ${y.toFixed(2)}: ${v.name} = ${Number.isNaN(value) ? "NaN" : fmt(value)}${units}`;
  });
  onStatus?.(`${v.name}: ${ny} x ${nx} cells${grid.stepDim ? `, ${grid.stepLabels.length} ${grid.stepDim} steps` : ""}`);
  return preview;
}

/** The coastline source last used (tests read the feature count). */
export function landFeatureCount(): number {
  const f = landSource?.getFeatures()[0];
  const g = f?.getGeometry();
  return g && "getLineStrings" in g ? (g as unknown as { getLineStrings(): unknown[] }).getLineStrings().length : 0;
}
