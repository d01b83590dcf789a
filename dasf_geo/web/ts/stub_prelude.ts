// Helpers of generated stubs (dasf_geo.web.typescript appends them after the types).
// --- stubs
/** A Dataset or DataArray argument: its NetCDF bytes (or base64 text). */
export type NetcdfValue = BinaryPart | Uint8Array | string;
/** A Dataset or DataArray result: its NetCDF bytes (base64 text from backends that only send JSON). */
export type NetcdfResult = BinaryValue | string;

function isBytes(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array;
}

function isPart(value: unknown): value is { data: Uint8Array; type?: string; mediaType?: string } {
  return typeof value === "object" && value !== null && isBytes((value as { data?: unknown }).data);
}

/** The request's JSON and its binary parts: NetCDF values become parts (or base64 text for JSON-only backends). */
async function prepare(client: DasfClient, input: object, netcdf: Record<string, string>, offset = 0): Promise<[Record<string, unknown>, BinaryPart[]]> {
  const args = input as Record<string, unknown>;
  const names = Object.keys(netcdf).filter((k) => args[k] !== undefined && args[k] !== null && typeof args[k] !== "string");
  if (names.length === 0) return [args, []];
  const useParts = await client.supports("parts");
  const out: Record<string, unknown> = { ...args };
  const parts: BinaryPart[] = [];
  for (const name of names) {
    const value = args[name];
    const data = isBytes(value) ? value : isPart(value) ? value.data : undefined;
    if (!data) throw new TypeError(`argument ${name} must be NetCDF bytes (Uint8Array), {data, type} or base64 text`);
    if (useParts) {
      parts.push({ data, type: `application/x-netcdf; xarray=${netcdf[name]}` });
      out[name] = partPlaceholder(offset + parts.length);
    } else {
      out[name] = encodeBase64(data);
    }
  }
  return [out, parts];
}
