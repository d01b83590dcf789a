"""HTTP gateway benchmark: small calls and 100 MB Datasets, side by side.

In one run, against the same ``dasf-geo broker`` and backend processes:

- **WebSocket**: dasf_geo callers on the broker (the direct path);
- **gateway**: httpx callers through ``dasf-geo gateway`` (HTTP/1.1
  keep-alive, JSON for small calls, raw NetCDF for Datasets);
- **bare FastAPI**: httpx callers to a FastAPI app that runs the same
  functions in-process (what a daeploy service does; no broker at all).

Small calls: p50 latency and calls/s with 1 and 4 callers. Datasets: a
100 MB result and a 100 MB argument as raw NetCDF (streamed to and from
files on the HTTP side; the WebSocket caller decodes and checks every
value, as in bench_streaming.py): MB/s, for an HTTP result the seconds
until its first MiB arrived (a gateway that passes the reply on while it
arrives answers long before the last byte), and the peak resident memory
above idle of gateway, broker, backend and caller (VmHWM after a reset,
from /proc).

    python benchmarks/bench_http.py [--calls 2000] [--size 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._procs import (
    BENCH,
    PYTHON,
    Process,
    free_port,
    rss_kib,
    rss_peak_kib,
    run_callers,
    start_backend,
    start_broker,
    wait_until,
)

MB = 1_000_000
RPC_TOPIC = "bench-http-rpc"
GEO_TOPIC = "bench-http-geo"


def reset_peak(pid: int) -> int:
    """Reset the peak RSS of ``pid``; return its current RSS in KiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return rss_kib(pid)


def start_http(args: list[str], port: int, probe: str) -> Process:
    proc = Process(args)

    def up() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=2) as r:
            return r.status < 500

    wait_until(up, f"{args[2:4]} on port {port}")
    return proc


def small(
    kind: str, urls: dict[str, str], callers: int, calls: int
) -> dict[str, float]:
    start_at = time.time() + 2.0
    if kind == "WebSocket":
        cmd = [PYTHON, str(BENCH / "_caller.py"), urls["broker"], RPC_TOPIC, "small"]
        args = [[*cmd, str(calls), str(start_at)] for _ in range(callers)]
    else:
        base, path = (
            (urls["gateway"], f"/services/{RPC_TOPIC}/echo")
            if kind == "gateway"
            else (urls["bare"], "/echo")
        )
        cmd = [PYTHON, str(BENCH / "_http_caller.py"), base, "small"]
        args = [[*cmd, str(calls), str(start_at), path] for _ in range(callers)]
    results = run_callers(args)
    latencies = [x for r in results for x in r["latencies"]]
    span = max(r["end"] for r in results) - min(r["begin"] for r in results)
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "calls_s": len(latencies) / span,
    }


def large(
    kind: str,
    mode: str,
    urls: dict[str, str],
    procs: dict[str, Process],
    size: int,
    upload: str,
    expected: float,
) -> dict[str, float]:
    watched = {
        "gateway": ["gateway", "broker", "backend"],
        "WebSocket": ["broker", "backend"],
        "bare FastAPI": ["bare"],
    }[kind]
    idle = {name: reset_peak(procs[name].pid) for name in watched}
    if kind == "WebSocket":
        cmd = [PYTHON, str(BENCH / "_geo_caller.py"), urls["broker"], GEO_TOPIC]
        (result,) = run_callers([[*cmd, mode, "500", "500", str(size)]])
    else:
        base = urls["gateway"] if kind == "gateway" else urls["bare"]
        prefix = f"/services/{GEO_TOPIC}" if kind == "gateway" else ""
        cmd = [PYTHON, str(BENCH / "_http_caller.py")]
        if mode == "reply":
            run = [*cmd, base, "reply", str(size), "0", f"{prefix}/make_dataset"]
        else:
            run = [
                *cmd,
                f"{base}{prefix}/dataset_sum",
                "request",
                "0",
                repr(expected),
                upload,
            ]
        (result,) = run_callers([run])
    out = {
        "MB_s": size * MB / result["seconds"] / MB,
        **({"first_s": result["first_s"]} if result.get("first_s") else {}),
        "caller": (result["peak_kib"] - result["idle_kib"]) / 1024,
    }
    for name in watched:
        out[name] = (rss_peak_kib(procs[name].pid) - idle[name]) / 1024
    return out


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--calls", type=int, default=2000, help="small calls per caller"
    )
    parser.add_argument("--size", type=int, default=100, help="Dataset size in MB")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure")
    args = parser.parse_args()

    broker, url = start_broker()
    procs: dict[str, Process] = {"broker": broker}
    try:
        procs["backend_rpc"] = start_backend(url, RPC_TOPIC)
        procs["backend"] = start_backend(
            url, GEO_TOPIC, "--max-workers", "1", script="bench_geo_service.py"
        )
        gw_port, bare_port = free_port(), free_port()
        procs["gateway"] = start_http(
            [
                PYTHON,
                "-m",
                "dasf_geo.cli.tool",
                "gateway",
                "--broker",
                url,
                "--port",
                str(gw_port),
                "--timeout",
                "1800",
                "--topic",
                RPC_TOPIC,
                "--topic",
                GEO_TOPIC,
            ],
            gw_port,
            "/notifications",
        )
        procs["bare"] = start_http(
            [PYTHON, str(BENCH / "_bare_fastapi.py"), str(bare_port)],
            bare_port,
            "/docs",
        )
        urls = {
            "broker": url,
            "gateway": f"http://127.0.0.1:{gw_port}",
            "bare": f"http://127.0.0.1:{bare_port}",
        }
        from benchmarks.bench_geo_service import expected_sum, make_dataset

        with tempfile.TemporaryDirectory() as tmp:
            upload = str(Path(tmp) / "upload.nc")
            make_dataset(500, 500, args.size).to_netcdf(upload)
            expected = expected_sum(500 * 500 * args.size)
            small_upload = str(Path(tmp) / "small.nc")
            make_dataset(500, 500, 1).to_netcdf(small_upload)
            # warm every path (imports, connections) before measuring
            for kind in ("gateway", "bare FastAPI", "WebSocket"):
                small(kind, urls, 1, 20)
                large(kind, "reply", urls, procs, 1, small_upload, 0.0)
                large(
                    kind,
                    "request",
                    urls,
                    procs,
                    1,
                    small_upload,
                    expected_sum(500 * 500),
                )

            print(
                f"small calls ({args.calls} per caller, median of {args.repeat} runs)"
            )
            print("| path | callers | p50 ms | calls/s |")
            print("|---|---|---|---|")
            for callers in (1, 4):
                for kind in ("WebSocket", "gateway", "bare FastAPI"):
                    fig = median_of(
                        [
                            small(kind, urls, callers, args.calls)
                            for _ in range(args.repeat)
                        ]
                    )
                    print(
                        f"| {kind} | {callers} | {fig['p50_ms']:.2f} | "
                        f"{fig['calls_s']:.0f} |",
                        flush=True,
                    )

            print(f"\n{args.size} MB Dataset (median of {args.repeat} runs)")
            print(
                "| path | direction | MB/s | first MiB s | gateway MB | broker MB "
                "| backend MB | caller MB |"
            )
            print("|---|---|---|---|---|---|---|---|")
            for mode in ("reply", "request"):
                for kind in ("WebSocket", "gateway", "bare FastAPI"):
                    fig = median_of(
                        [
                            large(kind, mode, urls, procs, args.size, upload, expected)
                            for _ in range(args.repeat)
                        ]
                    )
                    what = "result" if mode == "reply" else "argument"

                    def col(name: str, fig: Any = fig) -> str:
                        return f"{fig[name]:.0f}" if name in fig else "-"

                    backend = col("bare") if kind == "bare FastAPI" else col("backend")
                    print(
                        f"| {kind} | {what} | {fig['MB_s']:.0f} | "
                        + (f"{fig['first_s']:.2f}" if "first_s" in fig else "-")
                        + f" | {col('gateway')} | "
                        f"{col('broker')} | {backend} | {col('caller')} |",
                        flush=True,
                    )
    finally:
        for proc in reversed(list(procs.values())):
            proc.stop()


if __name__ == "__main__":
    main()
