/**
 * Finding a map-able grid in a Dataset: the first data variable whose last
 * two dimensions are latitude/longitude (or y/x with a projected `crs`),
 * with an optional time (or other) leading dimension.
 */

import { type NcFile, type NcVariable, readAll, readSlice, timeLabels } from "./netcdf";

export interface Grid {
  variable: NcVariable;
  /** "geographic" (lat/lon) or "projected" (x/y in `crs`) */
  kind: "geographic" | "projected";
  crs: string;
  xName: string;
  yName: string;
  xs: Float64Array;
  ys: Float64Array;
  /** the leading dimension the slider walks through, if any */
  stepDim: string | undefined;
  stepLabels: string[];
  /** other leading dimensions, shown at index 0 */
  fixedDims: string[];
  min: number;
  max: number;
  /** regular spacing of x and y (the preview assumes a regular grid) */
  dx: number;
  dy: number;
  irregular: boolean;
}

function str(v: NcVariable | undefined, key: string): string {
  const value = v?.attrs[key];
  return typeof value === "string" ? value.toLowerCase() : "";
}

function isLat(name: string, v: NcVariable | undefined): boolean {
  return str(v, "standard_name") === "latitude" || ["degrees_north", "degree_north", "degrees_n"].includes(str(v, "units")) || /^(lat|latitude|nav_lat)$/i.test(name);
}

function isLon(name: string, v: NcVariable | undefined): boolean {
  return str(v, "standard_name") === "longitude" || ["degrees_east", "degree_east", "degrees_e"].includes(str(v, "units")) || /^(lon|long|longitude|nav_lon)$/i.test(name);
}

function isX(name: string, v: NcVariable | undefined): boolean {
  return str(v, "standard_name") === "projection_x_coordinate" || str(v, "axis") === "x" || /^(x|easting)$/i.test(name);
}

function isY(name: string, v: NcVariable | undefined): boolean {
  return str(v, "standard_name") === "projection_y_coordinate" || str(v, "axis") === "y" || /^(y|northing)$/i.test(name);
}

function isTime(name: string, v: NcVariable | undefined): boolean {
  return str(v, "standard_name") === "time" || str(v, "axis") === "t" || /since/.test(str(v, "units")) || /^time$/i.test(name);
}

/** Why a Dataset cannot be drawn, in words a person understands. */
export class NoGridError extends Error {}

function spacing(values: Float64Array, name: string): { step: number; irregular: boolean } {
  if (values.length < 2) return { step: 1, irregular: false };
  const step = (values[values.length - 1]! - values[0]!) / (values.length - 1);
  if (!Number.isFinite(step) || step === 0) throw new NoGridError(`the ${name} coordinate is not monotonic`);
  let irregular = false;
  for (let i = 1; i < values.length; i++) {
    const d = values[i]! - values[i - 1]!;
    if (Math.sign(d) !== Math.sign(step)) throw new NoGridError(`the ${name} coordinate is not monotonic`);
    if (Math.abs(d - step) > Math.abs(step) * 0.01) irregular = true;
  }
  return { step, irregular };
}

/**
 * The grid to draw for `file`.
 *
 * @throws NoGridError saying what is missing.
 */
export function findGrid(file: NcFile): Grid {
  const byName = new Map(file.variables.map((v) => [v.name, v]));
  const crsAttr = typeof file.attrs["crs"] === "string" ? (file.attrs["crs"] as string).trim() : "";
  const candidates = file.variables.filter((v) => !(v.dims.length === 1 && v.dims[0] === v.name) && v.type !== "char" && v.dims.length >= 2);
  for (const v of candidates) {
    const yName = v.dims[v.dims.length - 2]!;
    const xName = v.dims[v.dims.length - 1]!;
    const yVar = byName.get(yName);
    const xVar = byName.get(xName);
    let kind: Grid["kind"] | undefined;
    if (isLat(yName, yVar) && isLon(xName, xVar)) kind = "geographic";
    else if (isY(yName, yVar) && isX(xName, xVar)) kind = "projected";
    if (!kind || !xVar || !yVar) continue;
    if (kind === "projected" && !crsAttr) {
      throw new NoGridError(`variable ${v.name} is on x/y coordinates, but the Dataset has no global crs attribute saying which projection they are in`);
    }
    const xs = readAll(file, xVar);
    const ys = readAll(file, yVar);
    if (xs.length === 0 || ys.length === 0) throw new NoGridError(`variable ${v.name} has no cells (its grid is ${ys.length} x ${xs.length})`);
    const sx = spacing(xs, xName);
    const sy = spacing(ys, yName);
    const leading = v.dims.slice(0, -2);
    let stepDim: string | undefined;
    let stepLabels: string[] = [];
    if (leading.length) {
      stepDim = leading.find((d) => isTime(d, byName.get(d))) ?? leading[0];
      const sv = byName.get(stepDim!);
      const n = v.shape[v.dims.indexOf(stepDim!)]!;
      if (sv && sv.dims.length === 1) {
        const values = readAll(file, sv);
        stepLabels = isTime(stepDim!, sv) ? timeLabels(sv, values) : Array.from(values, String);
      } else {
        stepLabels = Array.from({ length: n }, (_, i) => String(i));
      }
    }
    const grid: Grid = {
      variable: v,
      kind,
      crs: kind === "geographic" ? crsAttr || "EPSG:4326" : crsAttr,
      xName,
      yName,
      xs,
      ys,
      stepDim,
      stepLabels,
      fixedDims: leading.filter((d) => d !== stepDim),
      min: NaN,
      max: NaN,
      dx: sx.step,
      dy: sy.step,
      irregular: sx.irregular || sy.irregular,
    };
    const range = valueRange(file, grid);
    grid.min = range.min;
    grid.max = range.max;
    return grid;
  }
  const names = file.variables.filter((v) => v.dims.length > 0 && !(v.dims.length === 1 && v.dims[0] === v.name)).map((v) => `${v.name}(${v.dims.join(", ")})`);
  throw new NoGridError(
    names.length
      ? `no variable has latitude/longitude (or x/y with a projected crs) as its last two dimensions: ${names.join(", ")}`
      : "the Dataset has no data variables",
  );
}

/** The number of 2-D fields in the grid's variable (steps x fixed). */
function fieldCount(grid: Grid): number {
  return grid.variable.shape.slice(0, -2).reduce((a, b) => a * b, 1);
}

/** The index of the 2-D field for step `step` (other leading dimensions at 0). */
export function fieldIndex(grid: Grid, step: number): number {
  const lead = grid.variable.dims.slice(0, -2);
  const shape = grid.variable.shape.slice(0, -2);
  let index = 0;
  for (let i = 0; i < lead.length; i++) index = index * shape[i]! + (lead[i] === grid.stepDim ? step : 0);
  return index;
}

/** The values of one 2-D field (ny x nx, row-major). */
export function readField(file: NcFile, grid: Grid, step: number): Float64Array {
  const v = grid.variable;
  const nx = grid.xs.length;
  const ny = grid.ys.length;
  const index = fieldIndex(grid, step);
  if (v.record) {
    const perRecord = v.shape.slice(1).reduce((a, b) => a * b, 1);
    const record = Math.floor((index * nx * ny) / perRecord);
    const within = (index * nx * ny) % perRecord;
    return readSlice(file, v, record).subarray(within, within + nx * ny);
  }
  if (v.dims.length === 2) return readSlice(file, { ...v, shape: [1, ...v.shape] }, 0);
  const flat = { ...v, shape: [fieldCount(grid), ny, nx] };
  return readSlice(file, flat, index);
}

function valueRange(file: NcFile, grid: Grid): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  const steps = grid.stepDim ? grid.stepLabels.length : 1;
  for (let s = 0; s < steps; s++) {
    const values = readField(file, grid, s);
    for (let i = 0; i < values.length; i++) {
      const x = values[i]!;
      if (x < min) min = x;
      if (x > max) max = x;
    }
  }
  return Number.isFinite(min) ? { min, max } : { min: NaN, max: NaN };
}
