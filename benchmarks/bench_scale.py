"""Scale-out benchmark: backend processes, a NATS broker cluster, dask workers.

    python benchmarks/bench_scale.py [--repeat 3] [--nats nats://127.0.0.1:4222]
        [--only io,small,big,dask]

Measures, each the median of ``--repeat`` runs:

- ``io``: calls/s of a function that waits 20 ms, with 1, 2, 4 and 8
  backend processes (one worker each) on one topic of the embedded broker,
  32 calls in flight from one caller;
- ``small``: small-call p50 and calls/s through one embedded broker, and
  through two cluster fronts over NATS (backend on one, caller on the
  other);
- ``big``: a 100 MB Dataset reply through one embedded broker and across
  two fronts, and the CPU seconds each process of the chain spent on one
  reply (from ``/proc``: broker or fronts, backend, a local nats-server,
  the caller during its call), steadier than the rates on a shared
  machine;
- ``dask``: a 1 GB time mean computed on a dask scheduler with 1 and 2
  worker processes (one thread each), streamed back by the backend.

Prints a Markdown table with the targets of the scale-out work.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._procs import (
    BENCH,
    PYTHON,
    Process,
    run_callers,
    start_backend,
    start_broker,
)
from benchmarks.bench_rpc import percentile
from dasf_geo.testing.processes import ClusterFront, cluster_fronts, dask_cluster

MB = 1_000_000


def median_of(repeat: int, run: Any) -> Any:
    values = [run() for _ in range(repeat)]
    if isinstance(values[0], dict):
        return {k: statistics.median(v[k] for v in values) for k in values[0]}
    return statistics.median(values)


@contextlib.contextmanager
def fronts(nats: str, count: int = 2) -> Iterator[list[ClusterFront]]:
    """``count`` ``dasf-geo broker --cluster`` processes of a new cluster."""
    name = "bench" + secrets.token_hex(4)
    with cluster_fronts(nats, count, name=name, factory=Process) as started:
        yield started


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def local_nats_pid(nats: str) -> int | None:
    """The pid of the one nats-server on this machine, if ``nats`` is local."""
    host = urlsplit(nats.split(",")[0]).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        return None
    pids = [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _read(entry / "comm").strip() == "nats-server"
    ]
    return pids[0] if len(pids) == 1 else None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:  # gone meanwhile, or not ours to read
        return ""


def small_calls(url: str, topic: str, calls: int = 500) -> dict[str, float]:
    start_at = time.time() + 3
    (result,) = run_callers(
        [
            [
                PYTHON,
                str(BENCH / "_caller.py"),
                url,
                topic,
                "small",
                str(calls),
                str(start_at),
            ]
        ]
    )
    latencies = result["latencies"]
    return {
        "p50_ms": percentile(latencies, 50) * 1000,
        "calls_per_s": len(latencies) / (result["end"] - result["begin"]),
    }


def big_reply(url: str, topic: str, pids: dict[str, int]) -> dict[str, float]:
    """One 100 MB reply: MB/s and the CPU seconds of each process in ``pids``."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    (result,) = run_callers(
        [
            [
                PYTHON,
                str(BENCH / "_geo_caller.py"),
                url,
                topic,
                "reply",
                "500",
                "500",
                "100",
            ]
        ]
    )
    used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    # 500 x 500 x 100 float32 = 100 MB
    return {"mb_s": 100 / float(result["seconds"]), "caller": result["cpu"], **used}


def io_rate(url: str, topic: str, calls: int) -> float:
    (result,) = run_callers(
        [[PYTHON, str(BENCH / "_scale_caller.py"), url, topic, "io", str(calls), "32"]]
    )
    return float(result["calls_per_s"])


def measure_io(repeat: int) -> list[tuple[str, str, str]]:
    rows = []
    broker, url = start_broker()
    backends: list[Process] = []
    rates: dict[int, float] = {}
    try:
        for count in (1, 2, 4, 8):
            while len(backends) < count:
                backends.append(
                    start_backend(
                        url,
                        "bench-scale-io",
                        "--max-workers",
                        "1",
                        script="_scale_service.py",
                    )
                )
            calls = 150 * count
            rates[count] = median_of(
                repeat, lambda c=calls: io_rate(url, "bench-scale-io", c)
            )
            rows.append(
                (
                    f"20 ms I/O-bound calls/s, {count} backend process"
                    + ("es" if count > 1 else ""),
                    f"{rates[count]:.0f} ({rates[count] / rates[1]:.1f}x)",
                    ">= 7x with 8" if count == 8 else "",
                )
            )
    finally:
        for proc in backends:
            proc.stop()
        broker.stop()
    return rows


def measure_small_and_big(
    repeat: int, nats: str, small: bool, big: bool
) -> list[tuple[str, str, str]]:
    """Embedded broker and two fronts side by side: their runs alternate.

    Both set-ups run at once (idle while the other is measured), and each
    repeat measures one after the other, so that load from elsewhere on
    the machine weighs on both alike.
    """
    rows = []
    runs: dict[str, list[dict[str, float]]] = {}
    with contextlib.ExitStack() as stack:
        broker, url = start_broker()
        stack.callback(broker.stop)
        a, b = stack.enter_context(fronts(nats))
        sites = (("embedded", url, url), ("cluster", a.url, b.url))
        assert a.proc is not None and b.proc is not None
        chains: dict[str, dict[str, int]] = {
            "embedded": {"broker": broker.pid},
            "cluster": {"front A": a.proc.pid, "front B": b.proc.pid},
        }
        nats_pid = local_nats_pid(nats)
        if nats_pid is not None:
            chains["cluster"]["nats-server"] = nats_pid
        plans: list[tuple[str, Any]] = []
        if small:
            for where, serve, call in sites:
                backend = start_backend(
                    serve, "bench-scale-small", "--max-workers", "4"
                )
                stack.callback(backend.stop)
                plans.append(
                    (
                        f"small {where}",
                        lambda u=call: small_calls(u, "bench-scale-small"),
                    )
                )
        if big:
            for where, serve, call in sites:
                backend = start_backend(
                    serve, "bench-scale-big", script="bench_geo_service.py"
                )
                stack.callback(backend.stop)
                pids = {**chains[where], "backend": backend.pid}
                plans.append(
                    (
                        f"big {where}",
                        lambda u=call, p=pids: big_reply(u, "bench-scale-big", p),
                    )
                )
        for _ in range(repeat):
            for name, run in plans:
                runs.setdefault(name, []).append(run())
    results = {
        name: {k: statistics.median(v[k] for v in values) for k in values[0]}
        for name, values in runs.items()
    }
    if small:
        one, two = results["small embedded"], results["small cluster"]
        rows += [
            ("small call p50, embedded broker", f"{one['p50_ms']:.2f} ms", ""),
            (
                "small call p50, two fronts over NATS",
                f"{two['p50_ms']:.2f} ms (+{two['p50_ms'] - one['p50_ms']:.2f} ms)",
                "<= +1 ms",
            ),
            ("small calls/s, embedded broker", f"{one['calls_per_s']:.0f}", ""),
            ("small calls/s, two fronts over NATS", f"{two['calls_per_s']:.0f}", ""),
        ]
    if big:
        one, two = results["big embedded"], results["big cluster"]
        one_mb, two_mb = one["mb_s"], two["mb_s"]
        pairs = [
            f"{100 * c['mb_s'] / e['mb_s']:.0f}"
            for e, c in zip(runs["big embedded"], runs["big cluster"], strict=True)
        ]
        rows += [
            ("100 MB Dataset reply, embedded broker", f"{one_mb:.0f} MB/s", ""),
            (
                "100 MB Dataset reply, across two fronts",
                f"{two_mb:.0f} MB/s ({100 * two_mb / one_mb:.0f} %; "
                f"each round: {', '.join(pairs)} %)",
                ">= 80 %",
            ),
        ]
        for where, result in (("embedded broker", one), ("two fronts", two)):
            spent = ", ".join(
                f"{name} {result[name]:.2f}" for name in result if name != "mb_s"
            )
            total = sum(v for k, v in result.items() if k != "mb_s")
            rows.append(
                (
                    f"CPU s per 100 MB reply, {where}",
                    f"{spent} (sum {total:.2f})",
                    "",
                )
            )
    return rows


def measure_dask(repeat: int) -> list[tuple[str, str, str]]:
    rows = []
    seconds: dict[int, float] = {}
    for workers in (1, 2):
        with contextlib.ExitStack() as stack:
            address, _ = stack.enter_context(dask_cluster(workers, factory=Process))
            broker, url = start_broker()
            stack.callback(broker.stop)
            import os

            os.environ["DASF_GEO_DASK_SCHEDULER"] = address
            try:
                backend = start_backend(
                    url, "bench-scale-dask", script="_scale_service.py"
                )
            finally:
                del os.environ["DASF_GEO_DASK_SCHEDULER"]
            try:

                def run(url: str = url) -> float:
                    (result,) = run_callers(
                        [
                            [
                                PYTHON,
                                str(BENCH / "_scale_caller.py"),
                                url,
                                "bench-scale-dask",
                                "mean",
                                "250",
                            ]
                        ]
                    )
                    return float(result["seconds"])

                seconds[workers] = median_of(repeat, run)
            finally:
                backend.stop()
        rows.append(
            (
                f"1 GB time mean on dask, {workers} worker"
                + ("s" if workers > 1 else ""),
                f"{seconds[workers]:.1f} s ({1000 / seconds[workers]:.0f} MB/s)",
                "",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--only", default="io,small,big,dask")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    rows: list[tuple[str, str, str]] = []
    if "io" in only:
        rows += measure_io(args.repeat)
    if only & {"small", "big"}:
        rows += measure_small_and_big(
            args.repeat, args.nats, "small" in only, "big" in only
        )
    if "dask" in only:
        rows += measure_dask(args.repeat)
    print("| measure | result | target |")
    print("|---|---|---|")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
