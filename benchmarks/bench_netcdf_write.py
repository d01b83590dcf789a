"""NetCDF3 writing of an in-memory float32 Dataset: scipy vs dasf_geo's writer.

Each measurement runs in a fresh child process, which builds the Dataset,
resets its peak resident memory (``/proc/self/clear_refs``), writes the
file to disk and reports the time and the peak resident memory above the
memory it had with the Dataset already built (so only what writing needs
is counted; the payload itself is not). The table shows medians.

    python benchmarks/bench_netcdf_write.py [--sizes 100,400] [--repeat 3]

Writers:

- ``scipy``: ``Dataset.to_netcdf(path, engine="scipy",
  format="NETCDF3_CLASSIC")``, what dasf_geo used before;
- ``dasf_geo``: ``dasf_geo.data._nc3writer.write_nc3(ds, path)``, the chunked
  writer that ``write_netcdf``/``write_reply`` use now (the same bytes);
- ``netcdf4``: ``to_netcdf(path, engine="netcdf4", format="NETCDF3_CLASSIC")``,
  for comparison (``--netcdf4``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MB = 1_000_000
NX = NY = 500  # one time step is 1 MB of float32


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(size_mb: int, writer: str) -> dict[str, float]:
    """Build a ``size_mb`` MB Dataset, write it with ``writer``; measure."""
    import gc

    import numpy as np
    import xarray as xr

    from dasf_geo.data._nc3writer import write_nc3

    rng = np.random.default_rng(0)
    data = rng.random((size_mb, NY, NX), dtype=np.float32)
    ds = xr.Dataset(
        {"t": (("time", "y", "x"), data, {"units": "K"})},
        coords={
            "time": np.arange(size_mb, dtype="f8"),
            "y": np.arange(NY, dtype="f8"),
            "x": np.arange(NX, dtype="f8"),
        },
        attrs={"title": "benchmark"},
    )
    payload = ds.nbytes
    with tempfile.TemporaryDirectory(prefix="bench-nc3-") as tmp:
        path = os.path.join(tmp, "out.nc")
        # warm up imports and code paths on a tiny Dataset
        small = ds.isel(time=slice(0, 1))
        small.to_netcdf(path, engine="scipy", format="NETCDF3_CLASSIC")
        write_nc3(small, path)
        os.remove(path)
        gc.collect()
        idle = _status_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM
        start = time.perf_counter()
        if writer == "scipy":
            ds.to_netcdf(path, engine="scipy", format="NETCDF3_CLASSIC")
        elif writer == "netcdf4":
            ds.to_netcdf(path, engine="netcdf4", format="NETCDF3_CLASSIC")
        else:
            assert write_nc3(ds, path), "the dasf_geo writer declined"
        seconds = time.perf_counter() - start
        peak = _status_kib("VmHWM")
        written = os.path.getsize(path)
    return {
        "seconds": seconds,
        "payload_mb": payload / MB,
        "file_mb": written / MB,
        "extra_mb": (peak - idle) * 1024 / MB,
    }


def main() -> None:
    """Run the children and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,400", help="payload sizes, MB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--netcdf4", action="store_true", help="also netCDF4")
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "WRITER"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1])))
        return
    writers = ["scipy", "dasf_geo"] + (["netcdf4"] if args.netcdf4 else [])
    print(
        "| payload | writer | write time (s) | MB/s | peak RSS above idle (MB) "
        "| x payload |"
    )
    print("|---:|---|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        for writer in writers:
            runs = []
            for _ in range(args.repeat):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(size), writer],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            seconds = statistics.median(r["seconds"] for r in runs)
            extra = statistics.median(r["extra_mb"] for r in runs)
            payload = runs[0]["payload_mb"]
            print(
                f"| {payload:.0f} MB | {writer} | {seconds:.3f} | "
                f"{runs[0]['file_mb'] / seconds:,.0f} | {extra:,.1f} | "
                f"{extra / payload:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
