"""RPC benchmark: small-call latency and throughput, large payload round trips.

Runs dasf_geo (its broker, a backend process, caller processes) and, side
by side in the same run, the reference demessaging 0.6.4 backend and client
(installed in a cached virtual environment) through the same broker.

    python benchmarks/bench_rpc.py [--calls 500] [--repeat 3] [--sizes 10,100]
        [--no-reference]

Prints a Markdown table; medians of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._procs import (
    BENCH,
    PYTHON,
    run_callers,
    start_backend,
    start_broker,
)

MB = 1_000_000


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values`` (nearest rank)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def ours_small(url: str, topic: str, callers: int, calls: int) -> dict[str, float]:
    """Latency and throughput of ``callers`` processes making ``calls`` each."""
    start_at = time.time() + 3 + callers
    results = run_callers(
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
            for _ in range(callers)
        ]
    )
    latencies = [x for r in results for x in r["latencies"]]
    begin = min(r["begin"] for r in results)
    end = max(r["end"] for r in results)
    return {
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "calls_per_s": len(latencies) / (end - begin),
    }


def ours_text(url: str, topic: str, size: int) -> float:
    """Seconds for one ``echo_text`` round trip of ``size`` characters."""
    (result,) = run_callers(
        [[PYTHON, str(BENCH / "_caller.py"), url, topic, "text", str(size), "0"]]
    )
    return float(result["seconds"])


def median_of(repeat: int, run: Any) -> Any:
    """Run ``run()`` ``repeat`` times; medians of the numbers it returns."""
    values = [run() for _ in range(repeat)]
    if isinstance(values[0], dict):
        return {k: statistics.median(v[k] for v in values) for k in values[0]}
    return statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="10,100", help="payload sizes in MB")
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]

    rows: list[tuple[str, str, str]] = []
    broker, url = start_broker()
    try:
        backend = start_backend(url, "bench-topic", "--max-workers", "4")
        try:
            one = median_of(
                args.repeat, lambda: ours_small(url, "bench-topic", 1, args.calls)
            )
            four = median_of(
                args.repeat, lambda: ours_small(url, "bench-topic", 4, args.calls)
            )
            rows.append(
                (
                    "small call p50 / p95, 1 caller",
                    f"{one['p50_ms']:.2f} / {one['p95_ms']:.2f} ms",
                    "",
                )
            )
            rows.append(("calls/s, 1 caller", f"{one['calls_per_s']:.0f}", ""))
            rows.append(("calls/s, 4 callers", f"{four['calls_per_s']:.0f}", ""))
            for size in sizes:
                seconds = median_of(
                    args.repeat, lambda s=size: ours_text(url, "bench-topic", s * MB)
                )
                rows.append(
                    (
                        f"{size} MB round trip (request + reply)",
                        f"{seconds:.2f} s ({2 * size / seconds:.0f} MB/s)",
                        "",
                    )
                )
        finally:
            backend.stop()
        if not args.no_reference:
            from benchmarks import _reference

            ref = _reference.measure(
                url, calls=args.calls, repeat=args.repeat, sizes=sizes
            )
            rows = [(name, ours, ref.get(name, "n/a")) for name, ours, _ in rows]
    finally:
        broker.stop()

    print("| measure | dasf_geo | demessaging 0.6.4 |")
    print("|---|---|---|")
    for name, ours, ref in rows:
        print(f"| {name} | {ours} | {ref} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
