"""The fronts' data connection against the local NATS, and against fakes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import tempfile
import uuid

import pytest

from dasf_geo.broker.nats_data import DataConnection
from dasf_geo.exceptions import BrokerError
from tests.broker.cluster_helpers import (
    NATS_URL,
    nats_answers,
    requires_nats_server_binary,
)
from tests.conftest import timeout

requires_local_nats = pytest.mark.skipif(
    not nats_answers(),
    reason="needs NATS at 127.0.0.1:4222 (nats-server -js)",
)


def _subject() -> str:
    return "dasf_geo_test." + uuid.uuid4().hex[:12]


async def _until(check, what: str, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout(seconds)
    while not check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.02)


@requires_local_nats
async def test_messages_large_and_small_in_order():
    conn = DataConnection([NATS_URL], name="test")
    await conn.connect()
    try:
        got: list = []
        subject = _subject()
        conn.subscribe(subject, got.append)
        await conn.flush()
        big = bytes(range(256)) * 2000
        for i in range(20):
            await conn.publish(subject, b"%d\n" % i, big if i % 2 else b"small")
        await _until(lambda: len(got) == 20, "20 messages")
        for i, msg in enumerate(got):
            head, _, rest = bytes(msg.data).partition(b"\n")
            assert int(head) == i
            assert rest == (big if i % 2 else b"small")
        # too large for the server: refused before anything is written
        with pytest.raises(BrokerError, match="above the max_payload of"):
            await conn.publish(subject, b"x" * (conn.max_payload + 1))
    finally:
        await conn.close()


@requires_local_nats
async def test_queue_groups_headers_and_awaiting_callbacks():
    conn = DataConnection([NATS_URL], name="test")
    await conn.connect()
    try:
        subject = _subject()
        one: list = []
        two: list = []
        conn.subscribe(subject, one.append, queue="q")
        conn.subscribe(subject, two.append, queue="q")
        order: list = []

        def slow(msg):
            # every other message needs a wait; the next ones wait for it
            if int(msg.data) % 2 == 0:
                return asyncio.sleep(0.01, result=order.append(int(msg.data)))
            order.append(int(msg.data))
            return None

        ordered = _subject()
        conn.subscribe(ordered, slow)
        await conn.flush()
        for i in range(10):
            await conn.publish(subject, b"m", headers={"N": str(i)})
            await conn.publish(ordered, b"%d" % i)
        await _until(lambda: len(one) + len(two) == 10 and len(order) == 10, "all")
        assert sorted(int(m.headers["N"]) for m in one + two) == list(range(10))
        assert order == list(range(10))
    finally:
        await conn.close()


@requires_local_nats
async def test_a_dropped_connection_reconnects_and_subscribes_again():
    lost: list = []
    back: list = []
    conn = DataConnection(
        [NATS_URL],
        name="test",
        on_disconnect=lambda: lost.append(1),
        on_reconnect=lambda: back.append(1),
    )
    await conn.connect()
    try:
        subject = _subject()
        got: list = []
        sub = conn.subscribe(subject, got.append)
        await conn.flush()
        conn.drop()
        await _until(lambda: lost and back and conn.is_connected, "reconnected")
        await conn.publish(subject, b"after")
        await _until(lambda: got, "the message after the reconnect")
        assert bytes(got[0].data) == b"after"
        # publishing while the connection is down says so
        conn.drop()
        await asyncio.sleep(0)
        if not conn.is_connected:
            with pytest.raises(BrokerError, match="no connection to NATS at"):
                await conn.publish(subject, b"x")
        await _until(lambda: conn.is_connected, "reconnected again")
        await sub.unsubscribe()
        await conn.publish(subject, b"unsubscribed")
        await conn.flush()
        assert len(got) == 1
    finally:
        await conn.close()


async def _accept(reader, writer, info: dict) -> None:
    """A fake server's side of the handshake: INFO, then PONG to the PING."""
    writer.write(b"INFO " + json.dumps(info).encode() + b"\r\n")
    await writer.drain()
    await reader.readline()  # CONNECT
    await reader.readline()  # PING
    writer.write(b"PONG\r\n")
    await writer.drain()


@contextlib.asynccontextmanager
async def _fake_server(script):
    """A TCP server that runs ``script(reader, writer)`` for each client."""

    async def handle(reader, writer):
        with contextlib.suppress(Exception):
            await script(reader, writer)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        server.close()


async def test_a_server_that_is_not_nats_is_named():
    async def http(reader, writer):
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async with _fake_server(http) as url:
        conn = DataConnection([url], connect_timeout=timeout(2))
        with pytest.raises(BrokerError) as info:
            await conn.connect()
    text = str(info.value)
    assert url in text and "unknown protocol line: b'HTTP/1.1 400 Bad Request'" in text


async def test_credentials_of_the_url_and_an_err_at_connect():
    seen: list = []

    async def refuse(reader, writer):
        writer.write(b'INFO {"server_id":"fake","max_payload":1000}\r\n')
        await writer.drain()
        seen.append(await reader.readline())
        writer.write(b"-ERR 'Authorization Violation'\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async with _fake_server(refuse) as url:
        url = url.replace("nats://", "nats://alice:s%40cret@")
        conn = DataConnection([url], connect_timeout=timeout(2))
        with pytest.raises(BrokerError) as info:
            await conn.connect()
    assert "answered -ERR 'Authorization Violation'" in str(info.value)
    assert "alice:***@" in str(info.value)  # the URL, its password hidden
    assert "cret" not in str(info.value)
    assert b'"user":"alice"' in seen[0] and b'"pass":"s@cret"' in seen[0]


async def test_malformed_input_after_connect_drops_and_reconnects():
    clients: list = []

    async def garbled(reader, writer):
        clients.append(writer)
        await _accept(reader, writer, {"server_id": "fake", "max_payload": 1000})
        if len(clients) == 1:
            await reader.readline()  # SUB
            writer.write(b"MSG s 1 3\r\nabcXY\r\n")  # no CRLF after the payload
            await writer.drain()
        await asyncio.sleep(2)

    async with _fake_server(garbled) as url:
        conn = DataConnection([url], connect_timeout=timeout(2))
        await conn.connect()
        assert conn.max_payload == 1000
        conn.subscribe("s", lambda msg: None)
        await _until(lambda: len(clients) == 2, "a reconnect after bad input")
        await conn.close()


async def test_no_server_at_all():
    conn = DataConnection(["nats://127.0.0.1:1"], connect_timeout=timeout(2))
    with pytest.raises(BrokerError, match=r"cannot reach NATS at nats://127.0.0.1:1"):
        await conn.connect()


async def test_announced_servers_join_the_pool_with_the_urls_credentials():
    from dasf_geo.broker import nats_data

    announced = [
        "127.0.0.1:4301",
        "[::1]:4302",
        "no-port",  # not host:port
        7,  # not a string
        "host:4303/path",
        "x" * 400,
    ] + [f"10.0.0.{i}:4222" for i in range(40)]

    async def cluster_member(reader, writer):
        await _accept(reader, writer, {"server_id": "fake", "connect_urls": announced})
        await asyncio.sleep(2)

    async with _fake_server(cluster_member) as url:
        given = url.replace("nats://", "nats://alice:s%40cret@")
        conn = DataConnection([given], connect_timeout=timeout(2))
        await conn.connect()
        try:
            found = conn.discovered
            assert found[:2] == [
                "nats://alice:s%40cret@127.0.0.1:4301",
                "nats://alice:s%40cret@[::1]:4302",
            ]
            assert len(found) == nats_data.MAX_DISCOVERED
            assert all("no-port" not in u and "/path" not in u for u in found)
            # tried after the servers given, in turn
            assert conn._pool()[0] == given
            assert "cret" not in conn.url
        finally:
            await conn.close()


@contextlib.contextmanager
def _nats_cluster(size: int = 2):
    """``size`` nats-servers routed into one NATS cluster (no JetStream)."""
    from tests.conftest import free_port

    ports = [free_port() for _ in range(size)]
    routes = [free_port() for _ in range(size)]
    store = tempfile.mkdtemp(prefix="dasf-geo-natsc-")
    procs = []
    try:
        for port, route in zip(ports, routes, strict=True):
            others = ",".join(f"nats://127.0.0.1:{r}" for r in routes if r != route)
            procs.append(
                subprocess.Popen(
                    [
                        "nats-server",
                        "-a",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "--cluster_name",
                        "dasfgeotest",
                        "--cluster",
                        f"nats://127.0.0.1:{route}",
                        "--routes",
                        others,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    cwd=store,
                )
            )
        yield [f"nats://127.0.0.1:{port}" for port in ports], procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        shutil.rmtree(store, ignore_errors=True)


@requires_nats_server_binary
async def test_a_connection_given_one_server_of_a_nats_cluster_moves_to_another():
    with _nats_cluster(2) as (urls, procs):
        for url in urls:
            port = int(url.rsplit(":", 1)[1])
            await _until(lambda p=port: nats_answers(port=p), f"{url} answers", 10)
        conn = DataConnection([urls[0]], name="test", connect_timeout=timeout(2))
        await conn.connect()
        other = DataConnection([urls[1]], name="test-other")
        await other.connect()
        try:
            # the first server announces the second once their route is up
            await _until(lambda: urls[1] in conn.discovered, "the announcement", 10)
            subject = _subject()
            got: list = []
            conn.subscribe(subject, got.append)
            await conn.flush()
            procs[0].kill()
            procs[0].wait()
            await _until(
                lambda: conn.is_connected and conn.connected_url == urls[1],
                "the move to the announced server",
                10,
            )
            await conn.flush()  # the subscription is on the second server
            await other.publish(subject, b"via the second server")
            await _until(lambda: got, "the message through the second server")
            assert bytes(got[0].data) == b"via the second server"
        finally:
            await conn.close()
            await other.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://alice:s%40cret@h:4222", "nats://alice:***@h:4222"),
        ("nats://t0ken@h:4222", "nats://***@h:4222"),
        ("tls://h:4222", "tls://h:4222"),
    ],
)
def test_messages_hide_passwords_and_tokens_of_nats_urls(url, shown):
    from dasf_geo.broker.nats_data import redact_credentials

    assert redact_credentials(url) == shown
    assert (
        DataConnection([url, "nats://other:4222"]).url == shown + ",nats://other:4222"
    )
