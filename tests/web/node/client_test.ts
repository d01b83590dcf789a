// Calls examples/geo_service.py through the generated stub (./client.ts,
// written by the test next to this file) and reads the Dataset replies with
// netcdfjs. Prints one JSON line of findings for the Python test to check.
import { readFileSync } from "node:fs";
import { NetCDFReader } from "netcdfjs";
import { GeoService, DasfRemoteError, type BinaryValue } from "./client";

const broker = process.env["BROKER"]!;
const sample = process.env["SAMPLE_NC"]!;
const out: Record<string, unknown> = {};

function reader(value: unknown): NetCDFReader {
  const v = value as BinaryValue;
  if (!(v.data instanceof Uint8Array)) throw new Error(`not a binary reply: ${JSON.stringify(value).slice(0, 200)}`);
  out["mediaTypes"] = [...((out["mediaTypes"] as string[]) ?? []), v.mediaType];
  return new NetCDFReader(v.data.buffer.slice(v.data.byteOffset, v.data.byteOffset + v.data.byteLength) as ArrayBuffer);
}

// small fragments both ways: the 32 kB NetCDF argument and the replies travel in pieces
const service = new GeoService({ broker, maxPayloadSize: 4096, timeoutMs: 60000 });
const small = { properties: { dasfGeoFragmentSize: "4096" } };
try {
  out["features"] = await service.client.ping();
  const data = reader(await service.get_data(small));
  out["dims"] = data.dimensions;
  out["crs"] = data.getAttribute("crs");
  const tas = data.getDataVariable("tas") as number[];
  out["tasFirst"] = tas.slice(0, 3);
  out["tasLength"] = tas.length;

  const frame = await service.stations({ min_elevation: 500 });
  out["frameFormat"] = frame.format;
  out["frameRows"] = (frame.index as { stop?: number }).stop ?? null;

  const transfers: number[] = [];
  const anomaly = reader(
    await service.monthly_anomaly(
      { ds: new Uint8Array(readFileSync(sample)) },
      { ...small, onTransfer: (received) => transfers.push(received) },
    ),
  );
  out["anomalyVars"] = anomaly.variables.map((v) => v.name);
  const values = anomaly.getDataVariable("tas_anomaly") as number[];
  out["anomalyMean"] = values.reduce((a, b) => a + b, 0) / values.length;
  out["transferSteps"] = transfers.length;

  const series = reader(await service.time_series({ lat: 45, lon: 10 }));
  out["seriesVars"] = series.variables.map((v) => v.name);

  try {
    await service.time_series({ lat: "north" as unknown as number, lon: 10 });
    out["error"] = "no error";
  } catch (exc) {
    out["error"] = exc instanceof DasfRemoteError ? { message: exc.message, locs: exc.errors.map((e) => e.loc) } : String(exc);
  }
} finally {
  service.close();
}
console.log(JSON.stringify(out));
