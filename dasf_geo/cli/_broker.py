"""``dasf-geo broker``: run the embedded DASF/Pulsar WebSocket broker.

::

    dasf-geo broker                                  # ws://127.0.0.1:8080
    dasf-geo broker --port 9000 --store broker.sqlite
    dasf-geo broker --host 0.0.0.0 --auth tokens.yaml
    dasf-geo broker --cluster nats://127.0.0.1:4222  # a front of a cluster
    dasf-geo broker --max-total-bytes 1GiB --stall-timeout 300

Serves the Pulsar WebSocket API v2 layout (``/ws/v2/producer/…``,
``/ws/v2/consumer/…``), the plain layout (``/ws/TOPIC``,
``/ws/TOPIC/SUBSCRIPTION``, ``/ws/status-ping``), ``GET /health`` and
``GET /topics`` on one port until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from dasf_geo._loop import run as run_loop
from dasf_geo.cli._common import positive_seconds
from dasf_geo.exceptions import DasfGeoError

__all__ = ["add_parser", "run"]


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a port number between 0 and 65535, got {text!r:.40}"
        ) from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port number between 0 and 65535, got {value}"
        )
    return value


def _size(minimum: int = 1, why: str = "") -> Callable[[str], int]:
    """argparse type: bytes, or a number with a unit (``256MiB``, ``1.5GB``).

    ``why`` follows the minimum in the error for a value below it.
    """

    def size(text: str) -> int:
        from dasf_geo.protocol.options import parse_size

        try:
            value = parse_size(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number of bytes, got {text!r:.40} (write bytes, or a "
                "number with a unit: kB, MB, GB (powers of 1000) or KiB, MiB, GiB)"
            ) from None
        if value < minimum:
            shown = text if text.strip().isdigit() else f"{text!r:.40} ({value} bytes)"
            least = "a positive number of" if minimum == 1 else f"at least {minimum}"
            raise argparse.ArgumentTypeError(
                f"expected {least} bytes{why}, got {shown}"
            )
        return value

    return size


def _seconds_or_never(text: str) -> float | None:
    """argparse type: a number of seconds > 0, or ``never`` (None)."""
    if text.strip().lower() == "never":
        return None
    try:
        return positive_seconds(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds > 0 or 'never', got {text!r:.40}"
        ) from None


def _size_text(size: int) -> str:
    """A default size for ``--help``: ``32MiB`` where it is whole MiB."""
    mib = 1024 * 1024
    return f"{size // mib}MiB" if size % mib == 0 else str(size)


def add_parser(sub: Any) -> None:
    """Register ``dasf-geo broker``."""
    from dasf_geo.broker.model import (
        DEFAULT_MAX_CLIENT_BYTES,
        DEFAULT_MAX_INFLIGHT_BYTES,
        DEFAULT_MAX_TOPIC_BYTES,
        DEFAULT_MAX_TOTAL_BYTES,
        DEFAULT_STALL_TIMEOUT,
    )
    from dasf_geo.broker.server import DEFAULT_MAX_FRAME_SIZE, DEFAULT_PORT

    parser = sub.add_parser(
        "broker",
        help="run the embedded DASF/Pulsar-compatible WebSocket message broker",
        description="Run the embedded DASF/Pulsar WebSocket message broker: the "
        "Pulsar layout (/ws/v2/producer/..., /ws/v2/consumer/...), the plain "
        "layout (/ws/TOPIC), GET /health and GET /topics on one port, until "
        "Ctrl-C or SIGTERM.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1); other addresses need --auth "
        "or --insecure",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"TCP port, 0 for a free one (default: {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--store",
        metavar="PATH",
        help="SQLite file keeping persistent topics' messages until acked "
        "(default: persistent topics are kept in memory only)",
    )
    parser.add_argument(
        "--auth",
        metavar="FILE",
        help="YAML/JSON file mapping tokens to the topics they may produce to "
        "and consume from (see docs/broker.md)",
    )
    parser.add_argument(
        "--max-frame-size",
        type=_size(1024, " (DASF fragments are 512000 characters)"),
        default=DEFAULT_MAX_FRAME_SIZE,
        metavar="SIZE",
        help="largest frame a client may send; larger ones close the connection "
        f"with code 1009 (default: {_size_text(DEFAULT_MAX_FRAME_SIZE)})",
    )
    limits = parser.add_argument_group(
        "limits",
        "how much unacked payload the broker holds (see docs/reliability.md); "
        "sizes are bytes or a number with a unit: 256MiB, 1.5GB",
    )
    for flag, default, text in (
        (
            "--max-topic-bytes",
            DEFAULT_MAX_TOPIC_BYTES,
            "unacked payload one topic holds before its producers wait",
        ),
        (
            "--max-total-bytes",
            DEFAULT_MAX_TOTAL_BYTES,
            "unacked payload the whole broker holds before the producers of "
            "the topics that fill it wait (every producer at 1.25 times this)",
        ),
        (
            "--max-inflight-bytes",
            DEFAULT_MAX_INFLIGHT_BYTES,
            "unacked payload one consumer holds (one message always fits)",
        ),
        (
            "--max-client-bytes",
            DEFAULT_MAX_CLIENT_BYTES,
            "unacked payload all consumers of one token hold, with --auth",
        ),
    ):
        limits.add_argument(
            flag,
            type=_size(),
            default=default,
            metavar="SIZE",
            help=f"{text} (default: {_size_text(default)})",
        )
    limits.add_argument(
        "--stall-timeout",
        type=_seconds_or_never,
        default=DEFAULT_STALL_TIMEOUT,
        metavar="SECONDS",
        help="disconnect a consumer that holds --max-inflight-bytes and acks "
        "nothing for this long; its messages go back to the subscription; "
        f"'never' to keep it (default: {DEFAULT_STALL_TIMEOUT:g})",
    )
    parser.add_argument(
        "--subscription-expiry",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="delete durable subscriptions (persistent topics) that have had no "
        "consumer for this long, with their messages (default: keep them)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --host without --auth (trusted networks only)",
    )
    parser.add_argument(
        "--cluster",
        metavar="NATS_URLS",
        help="run as a stateless front of a broker cluster over NATS JetStream "
        "(comma-separated nats://HOST:PORT URLs); fronts with the same "
        "--cluster-name share topics (see docs/scaling.md)",
    )
    parser.add_argument(
        "--cluster-name",
        default="default",
        help="the cluster this front belongs to (default: default)",
    )
    parser.add_argument(
        "--ack-wait",
        type=positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="with --cluster: seconds before messages a dead front held are "
        "redelivered (default: 30)",
    )
    parser.add_argument(
        "--lease",
        type=positive_seconds,
        default=6.0,
        metavar="SECONDS",
        help="with --cluster: seconds before an Exclusive/Failover subscription "
        "of a dead front passes to another (default: 6)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        metavar="LEVEL",
        help="log level: DEBUG, INFO, WARNING or ERROR (default: INFO)",
    )
    parser.set_defaults(run=run)


async def _serve(args: argparse.Namespace) -> None:
    from dasf_geo.broker.server import Broker

    options: dict[str, Any] = {
        "store": args.store,
        "auth": args.auth,
        "max_frame_size": args.max_frame_size,
        "insecure": args.insecure,
        "subscription_expiry": args.subscription_expiry,
        "max_topic_bytes": args.max_topic_bytes,
        "max_total_bytes": args.max_total_bytes,
        "max_inflight_bytes": args.max_inflight_bytes,
        "max_client_bytes": args.max_client_bytes,
        "stall_timeout": args.stall_timeout,
    }
    if getattr(args, "cluster", None):
        from dasf_geo.broker.cluster import ClusterBroker

        broker: Broker = ClusterBroker(
            args.host,
            args.port,
            cluster=args.cluster,
            cluster_name=args.cluster_name,
            ack_wait=args.ack_wait,
            lease=args.lease,
            **options,
        )
    else:
        broker = Broker(args.host, args.port, **options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    await broker.start()
    print(
        f"dasf-geo broker listening on {broker.url} (Pulsar layout: "
        f"{broker.url}/ws/v2/…, websocket_url: {broker.websocket_url}, "
        f"health: {broker.http_url}/health)",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        print("dasf-geo broker stopping", flush=True)
        await broker.stop()


def run(args: argparse.Namespace) -> int:
    """Run ``dasf-geo broker`` until interrupted; return the exit code.

    Returns:
        0 after a clean stop, 1 if the broker cannot start (port taken, bad
        auth file, non-loopback host without ``--auth``…), 130 on Ctrl-C
        before the signal handlers were installed.
    """
    logging.basicConfig(
        level=getattr(logging, args.log_level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # fragments are large: keep their freed memory (see the module)
    from dasf_geo.broker.allocator import tune_allocator

    tune_allocator()
    try:
        run_loop(_serve(args))
    except DasfGeoError as exc:
        print(f"dasf-geo broker: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
