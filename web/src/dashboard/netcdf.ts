/**
 * Reading a NetCDF3 reply in the browser, as a Demap client does: the header
 * and coordinates with netcdfjs, data variables slice by slice straight from
 * the bytes into typed arrays (a 100 MB variable never becomes a JS array).
 */

import { NetCDFReader } from "netcdfjs";

export interface NcAttribute {
  name: string;
  value: string | number | number[];
}

export interface NcVariable {
  name: string;
  dims: string[];
  shape: number[];
  type: string;
  attrs: Record<string, string | number | number[]>;
  record: boolean;
  offset: number;
  /** bytes of one record (record variables) or of the whole variable */
  size: number;
}

export interface NcFile {
  version: number;
  dims: { name: string; size: number }[];
  attrs: Record<string, string | number | number[]>;
  variables: NcVariable[];
  /** the file's bytes */
  bytes: Uint8Array;
  recordStep: number;
  reader: NetCDFReader;
}

const TYPE_SIZE: Record<string, number> = { byte: 1, char: 1, short: 2, int: 4, float: 4, double: 8 };

function attrValue(value: unknown): string | number | number[] {
  if (typeof value === "string" || typeof value === "number") return value;
  if (Array.isArray(value)) return value.map(Number);
  return String(value);
}

/**
 * Parse a NetCDF3 file (classic or 64-bit offset).
 *
 * @throws Error with a message that says what the bytes are when they are not NetCDF3.
 */
export function readNetcdf(bytes: Uint8Array): NcFile {
  const magic = String.fromCharCode(...bytes.subarray(0, 4));
  if (!magic.startsWith("CDF")) {
    const hdf = bytes[1] === 0x48 && bytes[2] === 0x44 && bytes[3] === 0x46;
    throw new Error(
      hdf
        ? "this is NetCDF4/HDF5 data; the map preview reads NetCDF3 (ask without compression)"
        : `not NetCDF data (it starts with ${JSON.stringify(String.fromCharCode(...bytes.subarray(0, 8)).replace(/[^\x20-\x7e]/g, "."))})`,
    );
  }
  let reader: NetCDFReader;
  try {
    reader = new NetCDFReader(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
  } catch (exc) {
    throw new Error(`cannot read the NetCDF header: ${exc instanceof Error ? exc.message : String(exc)}`);
  }
  const header = reader.header;
  const dims = header.dimensions.map((d) => ({ name: d.name, size: d.size }));
  const recordName = header.recordDimension.name;
  const recordLength = header.recordDimension.length;
  const attrs: NcFile["attrs"] = {};
  for (const a of header.globalAttributes) attrs[a.name] = attrValue(a.value);
  const variables: NcVariable[] = header.variables.map((v) => {
    const vattrs: NcVariable["attrs"] = {};
    for (const a of v.attributes as { name: string; value: unknown }[]) vattrs[a.name] = attrValue(a.value);
    const vdims = v.dimensions.map((i) => dims[i]!.name);
    const shape = vdims.map((name) => (name === recordName ? recordLength : dims.find((d) => d.name === name)!.size));
    return { name: v.name, dims: vdims, shape, type: v.type, attrs: vattrs, record: v.record, offset: v.offset, size: v.size };
  });
  return {
    version: header.version,
    dims,
    attrs,
    variables,
    bytes,
    recordStep: header.recordDimension.recordStep ?? 0,
    reader,
  };
}

function numberAttr(v: NcVariable, name: string): number | undefined {
  const value = v.attrs[name];
  if (typeof value === "number") return value;
  if (Array.isArray(value) && typeof value[0] === "number") return value[0];
  return undefined;
}

/**
 * `count` values of `v` starting at element `start`, as float64 with
 * `_FillValue`/`missing_value` as NaN and `scale_factor`/`add_offset` applied.
 * For a record variable, `start` and `count` must lie inside one record.
 */
export function readValues(file: NcFile, v: NcVariable, start: number, count: number, record = 0): Float64Array {
  const width = TYPE_SIZE[v.type];
  if (width === undefined || v.type === "char") throw new Error(`variable ${v.name} is not numeric (${v.type})`);
  const base = v.record ? v.offset + record * file.recordStep : v.offset;
  const view = new DataView(file.bytes.buffer, file.bytes.byteOffset, file.bytes.byteLength);
  const out = new Float64Array(count);
  let pos = base + start * width;
  if (pos + count * width > file.bytes.byteLength) {
    throw new Error(`variable ${v.name}: the file is truncated (it has ${file.bytes.byteLength} bytes)`);
  }
  switch (v.type) {
    case "float":
      for (let i = 0; i < count; i++, pos += 4) out[i] = view.getFloat32(pos);
      break;
    case "double":
      for (let i = 0; i < count; i++, pos += 8) out[i] = view.getFloat64(pos);
      break;
    case "int":
      for (let i = 0; i < count; i++, pos += 4) out[i] = view.getInt32(pos);
      break;
    case "short":
      for (let i = 0; i < count; i++, pos += 2) out[i] = view.getInt16(pos);
      break;
    case "byte":
      for (let i = 0; i < count; i++, pos += 1) out[i] = view.getInt8(pos);
      break;
  }
  const fill = numberAttr(v, "_FillValue") ?? numberAttr(v, "missing_value");
  const scale = numberAttr(v, "scale_factor");
  const offset = numberAttr(v, "add_offset");
  if (fill !== undefined || scale !== undefined || offset !== undefined) {
    for (let i = 0; i < count; i++) {
      let x = out[i]!;
      if (fill !== undefined && (x === fill || (Number.isNaN(fill) && Number.isNaN(x)))) x = NaN;
      else x = x * (scale ?? 1) + (offset ?? 0);
      out[i] = x;
    }
  }
  return out;
}

/** All values of a (small) variable, e.g. a coordinate. */
export function readAll(file: NcFile, v: NcVariable): Float64Array {
  const n = v.shape.reduce((a, b) => a * b, 1);
  if (!v.record) return readValues(file, v, 0, n);
  const per = v.shape.slice(1).reduce((a, b) => a * b, 1);
  const out = new Float64Array(n);
  for (let r = 0; r < (v.shape[0] ?? 0); r++) out.set(readValues(file, v, 0, per, r), r * per);
  return out;
}

/** The values of `v` at index `index` of its first dimension (one time step). */
export function readSlice(file: NcFile, v: NcVariable, index: number): Float64Array {
  const per = v.shape.slice(1).reduce((a, b) => a * b, 1);
  if (v.record) return readValues(file, v, 0, per, index);
  return readValues(file, v, index * per, per);
}

/** A `char` variable's text (netcdfjs decodes it). */
export function readText(file: NcFile, v: NcVariable): string | null {
  return file.reader.getDataVariableAsString(v.name);
}

const UNIT_MS: Record<string, number> = {
  second: 1000, seconds: 1000, s: 1000, sec: 1000, secs: 1000,
  minute: 60000, minutes: 60000, min: 60000, mins: 60000,
  hour: 3600000, hours: 3600000, h: 3600000, hr: 3600000, hrs: 3600000,
  day: 86400000, days: 86400000, d: 86400000,
  microseconds: 0.001, milliseconds: 1, nanoseconds: 1e-6,
};

/** CF time values as labels (`2023-02-15`), or the numbers when the units are not a standard calendar. */
export function timeLabels(v: NcVariable, values: Float64Array): string[] {
  const units = typeof v.attrs["units"] === "string" ? (v.attrs["units"] as string) : "";
  const calendar = typeof v.attrs["calendar"] === "string" ? (v.attrs["calendar"] as string).toLowerCase() : "standard";
  const m = /^\s*(\w+)\s+since\s+(.+?)\s*$/.exec(units);
  const ok = ["standard", "gregorian", "proleptic_gregorian"].includes(calendar);
  if (!m || !ok || UNIT_MS[m[1]!.toLowerCase()] === undefined) return Array.from(values, (x) => String(x));
  let ref = m[2]!.trim().replace(" ", "T");
  if (/^\d{4}-\d{1,2}-\d{1,2}$/.test(ref)) ref += "T00:00:00";
  if (!/[zZ]|[+-]\d\d:?\d\d$/.test(ref)) ref += "Z";
  const start = Date.parse(ref);
  if (Number.isNaN(start)) return Array.from(values, (x) => String(x));
  const step = UNIT_MS[m[1]!.toLowerCase()]!;
  return Array.from(values, (x) => {
    const iso = new Date(start + x * step).toISOString();
    return iso.endsWith("T00:00:00.000Z") ? iso.slice(0, 10) : iso.replace(".000Z", "Z");
  });
}
