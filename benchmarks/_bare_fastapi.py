"""A bare FastAPI app calling the benchmark functions in-process (what a
daeploy service does), for bench_http.py.

Usage: python _bare_fastapi.py PORT
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from benchmarks.bench_geo_service import dataset_sum, make_dataset
from benchmarks.bench_service import echo

app = FastAPI()


class EchoArgs(BaseModel):
    value: int


class GridArgs(BaseModel):
    nx: int
    ny: int
    nt: int


@app.post("/echo")
def post_echo(args: EchoArgs) -> int:
    return echo(args.value)


@app.post("/make_dataset")
def post_make_dataset(args: GridArgs) -> FileResponse:
    # written to a file and streamed from it, as the gateway's path does
    fd, path = tempfile.mkstemp(suffix=".nc")
    import os

    os.close(fd)
    make_dataset(args.nx, args.ny, args.nt).to_netcdf(path)
    return FileResponse(
        path,
        media_type="application/x-netcdf",
        background=BackgroundTask(os.unlink, path),
    )


@app.post("/dataset_sum")
async def post_dataset_sum(request: Request) -> float:
    import xarray as xr

    with tempfile.NamedTemporaryFile(suffix=".nc") as fh:
        async for chunk in request.stream():
            fh.write(chunk)
        fh.flush()
        return dataset_sum(xr.open_dataset(fh.name))


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
