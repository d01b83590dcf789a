"""Service SDK costs: an entrypoint against a plain module function; the store.

Everything runs in one process (the embedded broker and the backends in
threads, the caller in the main thread), so the figures compare the three
ways of serving one function on the same footing; they are not the
multi-process figures of bench_rpc.py.

    python benchmarks/bench_service_api.py [--calls 1000] [--repeat 3] [--writes 2000]

Prints Markdown tables; medians of ``--repeat`` interleaved runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def echo(value: int) -> int:
    """Return ``value`` (a small call)."""
    return value


def timed_calls(client, request: dict, calls: int) -> list[float]:
    for _ in range(50):  # warm up
        client.call(request)
    out = []
    for i in range(calls):
        request["value"] = i
        t0 = time.perf_counter()
        client.call(request)
        out.append(time.perf_counter() - t0)
    return out


def bench_calls(
    calls: int, repeat: int, folder: Path
) -> list[tuple[str, float, float]]:
    from dasf_geo.backend import BackendModule
    from dasf_geo.broker import EmbeddedBroker
    from dasf_geo.service import Service
    from dasf_geo.transport.backend import BackgroundListener
    from dasf_geo.transport.client import Client
    from dasf_geo.transport.dynamic import messaging_config

    results: dict[str, list[list[float]]] = {
        "plain module function": [],
        "service entrypoint": [],
        "service entrypoint, monitor=True (SQLite)": [],
    }
    with EmbeddedBroker(host="127.0.0.1", port=0) as broker:
        plain = BackendModule.create_model(
            members=[echo], messaging_config=messaging_config("plain", broker.url)
        )
        svc = Service("svc", "1.0.0")
        svc.configure_store(path=folder / "svc.sqlite")
        svc.entrypoint(echo)
        mon = Service("mon", "1.0.0")
        mon.configure_store(path=folder / "mon.sqlite")
        mon.entrypoint(echo, monitor=True)
        with BackgroundListener(plain):
            svc.start(broker=broker.url)
            mon.start(broker=broker.url)
            clients = {
                name: Client(messaging_config(topic, broker.url), topic)
                for name, topic in zip(results, ["plain", "svc", "mon"], strict=True)
            }
            for _ in range(repeat):
                for name, client in clients.items():
                    results[name].append(
                        timed_calls(client, {"func_name": "echo", "value": 0}, calls)
                    )
            for client in clients.values():
                client.close()
            svc.stop()
            mon.stop()
    rows = []
    for name, runs in results.items():
        p50 = statistics.median(statistics.median(r) for r in runs)
        rate = statistics.median(len(r) / sum(r) for r in runs)
        rows.append((name, p50 * 1000, rate))
    return rows


def bench_store(writes: int, repeat: int, folder: Path) -> list[tuple[str, float]]:
    import sqlalchemy as sa

    from dasf_geo.service.monitor_db import MonitorStore

    targets: list[tuple[str, str | None]] = [("SQLite file", None)]
    admin = None
    try:
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("DROP DATABASE IF EXISTS dasf_geo_bench"))
            conn.execute(sa.text("CREATE DATABASE dasf_geo_bench"))
        targets.append(
            (
                "PostgreSQL 127.0.0.1",
                "postgresql+psycopg://postgres@127.0.0.1:5432/dasf_geo_bench",
            )
        )
    except Exception as exc:  # no PostgreSQL here
        print(f"(PostgreSQL skipped: {exc})", file=sys.stderr)
    rows = []
    try:
        for label, url in targets:
            rates = []
            for i in range(repeat):
                store = MonitorStore(
                    "bench", f"r{i}", url=url, path=folder / f"b{i}.sqlite"
                ).open()
                t0 = time.perf_counter()
                for n in range(writes):
                    store.record({"level": float(n)})
                rates.append(writes / (time.perf_counter() - t0))
                store.close()
            rows.append((label, statistics.median(rates)))
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(
                    sa.text("DROP DATABASE IF EXISTS dasf_geo_bench WITH (FORCE)")
                )
            admin.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--writes", type=int, default=2000)
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        calls = bench_calls(args.calls, args.repeat, folder)
        store = bench_store(args.writes, args.repeat, folder)
    print(
        f"Small calls, one caller, {args.calls} calls x {args.repeat} runs (medians):\n"
    )
    print("| served as | p50 | calls/s |")
    print("|---|---|---|")
    for name, p50, rate in calls:
        print(f"| {name} | {p50:.2f} ms | {rate:,.0f} |")
    print(f"\nservice.store(level=x), one value per call, {args.writes} calls:\n")
    print("| store | writes/s |")
    print("|---|---|")
    for label, rate in store:
        print(f"| {label} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
