"""Streaming benchmark: large Dataset replies and arguments, time and memory.

Runs dasf_geo (dasf-geo broker, a backend process, a caller process) and,
side by side in the same run, the reference demessaging 0.6.4 backend
through the same broker. For each size it reports wall time, MB/s and the
peak resident memory above idle (VmHWM after resetting it, minus VmRSS
before) of backend, broker and caller, measured from /proc.

    python benchmarks/bench_streaming.py [--sizes 10,100] [--lazy 1000]
        [--repeat 3] [--no-reference] [--modes reply,argument,lazy,lazy-argument]

The reference's Python client cannot reassemble a fragmented reply, so its
reply is joined by a bare WebSocket caller (its time is from the request to
the last fragment; no caller memory is reported for it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._procs import (
    BENCH,
    PYTHON,
    Process,
    rss_kib,
    rss_peak_kib,
    run_callers,
    start_backend,
    start_broker,
)

MB = 1_000_000
NX = NY = 500  # one time step is 1 MB of float32


def reset_peak(pid: int) -> int:
    """Reset the peak RSS of ``pid``; return its current RSS in KiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return rss_kib(pid)


def start_our_backend(url: str, topic: str) -> Process:
    """Serve bench_geo_service.py with one worker, warmed up."""
    proc = start_backend(
        url, topic, "--max-workers", "1", script="bench_geo_service.py"
    )
    # warm the reply and argument paths (imports, caches), so that the
    # memory measured afterwards is the transfer's, not the first call's
    import dasf_geo
    from benchmarks.bench_geo_service import make_dataset

    with dasf_geo.connect(topic, url, timeout=60, progress=False) as svc:
        svc.make_dataset(2, 2, 1)
        svc.lazy_dataset(2, 2, 1, 1)
        svc.dataset_sum(make_dataset(2, 2, 1))
    return proc


def ours(
    url: str, topic: str, backend: Process, broker: Process, mode: str, size_mb: int
) -> dict[str, float]:
    """One transfer of ``size_mb`` MB; seconds and peak RSS above idle (MB)."""
    idle_backend = reset_peak(backend.pid)
    idle_broker = reset_peak(broker.pid)
    (result,) = run_callers(
        [
            [
                PYTHON,
                str(BENCH / "_geo_caller.py"),
                url,
                topic,
                mode,
                str(NX),
                str(NY),
                str(size_mb),
            ]
        ]
    )
    return {
        "seconds": result["seconds"],
        "backend": (rss_peak_kib(backend.pid) - idle_backend) / 1024,
        "broker": (rss_peak_kib(broker.pid) - idle_broker) / 1024,
        "caller": (result["peak_kib"] - result["idle_kib"]) / 1024,
    }


def reference(url: str, size_mb: int, broker: Process, repeat: int) -> dict[str, Any]:
    """The reference backend's Dataset reply of ``size_mb`` MB."""
    from benchmarks import _reference
    from tests.interop import peers

    out: dict[str, Any] = {}
    with _reference.ReferenceBackend(url, "bench-geo-ref") as backend:
        pid = backend.process.proc.pid
        runs = []
        for _ in range(repeat):
            idle_backend = reset_peak(pid)
            idle_broker = reset_peak(broker.pid)
            replies, seconds = peers.raw_request(
                backend.endpoint,
                backend.topic,
                {"func_name": "make_dataset", "nx": NX, "ny": NY, "nt": size_mb},
                1800,
            )
            text = json.loads(peers.join_reply(replies))
            if not isinstance(text, str) or len(text) < size_mb * MB:
                raise RuntimeError("the reference's reply did not join to a Dataset")
            del replies, text
            runs.append(
                {
                    "seconds": seconds,
                    "backend": (rss_peak_kib(pid) - idle_backend) / 1024,
                    "broker": (rss_peak_kib(broker.pid) - idle_broker) / 1024,
                }
            )
        for key in runs[0]:
            out[key] = statistics.median(r[key] for r in runs)
    return out


def reference_argument(url: str, size_mb: int) -> str:
    """Try to send a ``size_mb`` MB Dataset argument as the reference does.

    demessaging's client sends the request's JSON, with the Dataset as
    base64 NetCDF inside, in one message and never fragments it; a bare
    caller does the same here (to ``scale_dataset`` of the reference
    backend). Returns the table row's text: the time, or why it failed.
    """
    from benchmarks import _reference
    from benchmarks.bench_geo_service import make_dataset
    from dasf_geo.data import encode_base64_xarray
    from tests.interop import peers

    text = encode_base64_xarray(make_dataset(NX, NY, size_mb))
    frame = (len(text) + 60) * 4 // 3  # the request's JSON, base64 again
    with _reference.ReferenceBackend(url, "bench-geo-ref") as backend:
        try:
            _, seconds = peers.raw_request(
                backend.endpoint,
                backend.topic,
                {"func_name": "scale_dataset", "ds": text, "factor": 1.0},
                1800,
            )
        except peers.PeerError:
            raise
        except Exception:  # the broker closed the producer: frame too big
            return (
                f"| demessaging 0.6.4 argument | {size_mb} MB | cannot send: one "
                f"{frame / MB:.0f} MB frame, above the broker's frame limit (the "
                "reference never fragments requests) | | | | |"
            )
    return (
        f"| demessaging 0.6.4 argument | {size_mb} MB | {seconds:.2f} s | "
        f"{size_mb / seconds:.0f} | | | |"
    )


def row(name: str, size_mb: int, r: dict[str, Any]) -> str:
    caller = f"{r['caller']:.0f}" if "caller" in r else "n/a (client cannot join)"
    return (
        f"| {name} | {size_mb} MB | {r['seconds']:.2f} s | "
        f"{size_mb / r['seconds']:.0f} | {r['backend']:.0f} | {r['broker']:.0f} | "
        f"{caller} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100", help="in-memory sizes, MB")
    parser.add_argument("--lazy", default="", help="dask-backed reply sizes, MB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument(
        "--modes",
        default="reply,argument,lazy,lazy-argument",
        help="which dasf_geo rows to run: reply, argument (a Dataset sent to "
        "the backend), lazy (the dask-backed reply, sizes from --lazy), "
        "lazy-argument (a dask-backed Dataset sent, sizes from --lazy)",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    lazy = [int(s) for s in args.lazy.split(",") if s]
    modes = {m.strip() for m in args.modes.split(",") if m.strip()}
    unknown = modes - {"reply", "argument", "lazy", "lazy-argument"}
    if unknown:
        parser.error(
            f"unknown --modes {sorted(unknown)}; use reply, argument, lazy, "
            "lazy-argument"
        )

    rows = []
    broker, url = start_broker()
    try:
        for mode, mode_sizes in (
            ("reply", sizes),
            ("request", sizes),
            ("lazy", lazy),
            ("lazy-request", lazy),
        ):
            option = {"request": "argument", "lazy-request": "lazy-argument"}
            if option.get(mode, mode) not in modes:
                continue
            for size in mode_sizes:
                runs = []
                for _ in range(args.repeat):
                    # a fresh backend each run: memory a process kept from an
                    # earlier transfer would hide this one's peak
                    backend = start_our_backend(url, "bench-geo")
                    try:
                        runs.append(ours(url, "bench-geo", backend, broker, mode, size))
                    finally:
                        backend.stop()
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                name = {
                    "reply": "dasf_geo reply",
                    "request": "dasf_geo argument",
                    "lazy": "dasf_geo reply, dask-backed",
                    "lazy-request": "dasf_geo argument, dask-backed",
                }[mode]
                rows.append(row(name, size, med))
        if not args.no_reference:
            for size in sizes:
                rows.append(
                    row(
                        "demessaging 0.6.4 reply",
                        size,
                        reference(url, size, broker, args.repeat),
                    )
                )
            for size in sizes:
                rows.append(reference_argument(url, size))
    finally:
        broker.stop()

    print("| transfer | size | time | MB/s | backend MB | broker MB | caller MB |")
    print("|---|---|---|---|---|---|---|")
    for line in rows:
        print(line)
    print(
        f"\nmemory: peak resident set above idle, in MB (medians of {args.repeat} runs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
