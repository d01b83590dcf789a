"""One HTTP benchmark caller process (httpx, one keep-alive connection).

Usage: python _http_caller.py BASE MODE N START_AT [PATH]
  MODE small:    N sequential POST {BASE}{PATH} {"value": i}; the latencies.
  MODE reply:    POST {BASE}{PATH} {"nx": 500, "ny": 500, "nt": N} with
                 Accept: application/x-netcdf; the body streamed to a file.
  MODE request:  POST the NetCDF file PATH (streamed) to {BASE}; checks the
                 sum the backend returns against START_AT (the expected sum).
Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from benchmarks._procs import rss_kib, rss_peak_kib


def main() -> None:
    base, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    start_at = float(sys.argv[4])
    path = sys.argv[5] if len(sys.argv) > 5 else ""
    with httpx.Client(timeout=1800) as http:
        if mode == "small":
            assert http.post(base + path, json={"value": -1}).json() == -1  # warm up
            time.sleep(max(0.0, start_at - time.time()))
            latencies = []
            begin = time.time()
            for i in range(n):
                t0 = time.perf_counter()
                response = http.post(base + path, json={"value": i})
                assert response.json() == i, response.text
                latencies.append(time.perf_counter() - t0)
            end = time.time()
            print(json.dumps({"begin": begin, "end": end, "latencies": latencies}))
            return
        pid = os.getpid()
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        idle = rss_kib(pid)
        first = None  # seconds to the first MiB of a result
        if mode == "reply":
            with tempfile.TemporaryFile() as out:
                t0 = time.perf_counter()
                with http.stream(
                    "POST",
                    base + path,
                    json={"nx": 500, "ny": 500, "nt": n},
                    headers={"Accept": "application/x-netcdf"},
                ) as response:
                    response.raise_for_status()
                    for chunk in response.iter_bytes(1 << 20):
                        if first is None:
                            first = time.perf_counter() - t0
                        out.write(chunk)
                seconds = time.perf_counter() - t0
                size = out.tell()
        else:
            size = os.path.getsize(path)

            def body():
                with open(path, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        yield chunk

            t0 = time.perf_counter()
            response = http.post(
                base,
                content=body(),
                headers={"Content-Type": "application/x-netcdf"},
            )
            seconds = time.perf_counter() - t0
            response.raise_for_status()
            assert response.json() == start_at, (response.json(), start_at)
        print(
            json.dumps(
                {
                    "seconds": seconds,
                    "first_s": first,
                    "bytes": size,
                    "idle_kib": idle,
                    "peak_kib": rss_peak_kib(pid),
                }
            )
        )


if __name__ == "__main__":
    main()
