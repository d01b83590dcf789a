"""Requests and replies through a real embedded broker."""

from __future__ import annotations

import asyncio
import json
import math
import os
import random

import pytest

from dasf_geo.exceptions import (
    ConnectionFailed,
    RemoteError,
    RemoteValidationError,
    RequestTimeout,
)
from dasf_geo.protocol import messages as m
from dasf_geo.transport.client import AsyncClient, Client
from tests.conftest import free_port, timeout
from tests.transport.conftest import (
    Handler,
    listener_thread,
    raw_request,
    running_listener,
)


async def test_echo_ping_info_api_info(make_config):
    config = make_config()
    handler = Handler(config.topic)
    async with running_listener(handler, config), AsyncClient(config) as client:
        assert await client.call({"op": "echo", "value": {"a": [1, "b"]}}) == {
            "a": [1, "b"]
        }
        assert await client.ping() >= 0
        assert await client.info() == {"title": "test schema"}
        assert (await client.api_info())["functions"] == []


async def test_many_concurrent_requests_are_matched(make_config):
    config = make_config(max_workers=4)
    handler = Handler(config.topic)
    async with running_listener(handler, config), AsyncClient(config) as client:
        values = [random.random() for _ in range(300)]
        results = await asyncio.gather(
            *(
                client.call({"op": "echo", "value": v, "id": i})
                for i, v in enumerate(values)
            )
        )
    assert results == values
    assert sorted(handler.executed) == list(range(300))


async def test_five_mb_result_and_argument_round_trip(make_config):
    config = make_config()
    handler = Handler(config.topic)
    blob = os.urandom(5 * 1024 * 1024).hex()  # 10 MB of text
    async with running_listener(handler, config), AsyncClient(config) as client:
        result = await client.call({"op": "blob", "n": 5 * 1024 * 1024})
        assert result == "x" * (5 * 1024 * 1024)
        assert await client.call({"op": "size", "value": blob}) == len(blob)
        assert await client.call({"op": "echo", "value": blob}) == blob


async def test_validation_error_is_structured(make_config):
    config = make_config()
    async with (
        running_listener(Handler(config.topic), config),
        AsyncClient(config) as client,
    ):
        with pytest.raises(RemoteValidationError) as info:
            await client.call({"op": "validate", "args": {"n": -1}})
    assert info.value.errors == [
        {
            "type": "greater_than_equal",
            "loc": ["n"],
            "msg": "Input should be greater than or equal to 0",
            "input": -1,
            "ctx": {"ge": 0},
        }
    ]
    assert str(info.value).startswith("error validating request: 1 validation error")


async def test_exception_is_an_error_reply_without_traceback(make_config):
    config = make_config()
    handler = Handler(config.topic)
    async with running_listener(handler, config), AsyncClient(config) as client:
        with pytest.raises(RemoteError) as info:
            await client.call({"op": "fail"})
        assert str(info.value) == (
            "error executing request: RuntimeError: the function failed on purpose"
        )
        assert "Traceback" not in str(info.value)
        handler.debug = True
        with pytest.raises(RemoteError, match="Traceback"):
            await client.call({"op": "fail"})
        # and the backend keeps serving
        assert await client.call({"op": "echo", "value": 1}) == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (m.b64encode(b"\xff\xfe not utf-8"), "error validating request"),
        (m.b64encode(b"{not json"), "error validating request"),
        (m.b64encode(b""), "error validating request"),
    ],
)
async def test_malformed_request_payload_gets_an_error_reply(
    make_config, payload, message
):
    """The reference never answers these; we must."""
    config = make_config()
    async with (
        running_listener(Handler(config.topic), config),
        AsyncClient(config) as client,
    ):
        ack, fut = await raw_request(client, config, payload)
        assert ack["result"] == "ok"
        reply = await asyncio.wait_for(fut, timeout(10))
        assert reply.status == "error"
        assert message in reply.text()
        # the backend keeps serving
        assert await client.call({"op": "echo", "value": 2}) == 2


async def test_non_base64_request_is_refused_by_the_broker_or_answered(make_config):
    config = make_config()
    async with (
        running_listener(Handler(config.topic), config),
        AsyncClient(config) as client,
    ):
        ack, fut = await raw_request(client, config, b"not base64!")
        if ack["result"] == "ok":
            reply = await asyncio.wait_for(fut, timeout(10))
            assert reply.status == "error"
            assert "not valid base64" in reply.text()
        else:
            assert ack["result"].startswith("send-error")
        assert await client.call({"op": "echo", "value": 3}) == 3


async def test_queue_full_is_an_error_reply(make_config):
    config = make_config(max_workers=1, queue_size=1)
    handler = Handler(config.topic)
    handler.release.clear()
    async with running_listener(handler, config), AsyncClient(config) as client:
        first = asyncio.create_task(client.call({"op": "wait"}))
        await asyncio.sleep(0.2)
        with pytest.raises(RemoteError, match="queue of 1 requests is full"):
            await client.call({"op": "echo", "value": 1})
        handler.release.set()
        assert await first is None


async def test_timeout_names_topic_function_and_seconds(make_config):
    config = make_config(topic="slow-topic")
    handler = Handler(config.topic)
    handler.release.clear()
    async with running_listener(handler, config), AsyncClient(config) as client:
        with pytest.raises(RequestTimeout) as info:
            await client.request(
                json.dumps({"op": "wait"}).encode(), timeout=0.3, what="wait()"
            )
        handler.release.set()
    assert str(info.value) == "no reply from topic 'slow-topic' to wait() within 0.3 s"
    assert info.value.topic == "slow-topic"


async def test_connection_failure_names_the_url():
    from tests.transport.conftest import Config

    port = free_port()
    config = Config(base=f"ws://127.0.0.1:{port}", topic="t")
    with pytest.raises(ConnectionFailed, match=f"127.0.0.1:{port}"):
        await AsyncClient(config).start()


async def test_two_listeners_share_a_topic_and_run_each_request_once(make_config):
    config = make_config(max_workers=2)
    one, two = Handler(config.topic), Handler(config.topic)
    async with (
        running_listener(one, config),
        running_listener(two, config),
        AsyncClient(config) as client,
    ):
        await asyncio.gather(
            *(client.call({"op": "echo", "value": i, "id": i}) for i in range(100))
        )
    executed = one.executed + two.executed
    assert sorted(executed) == list(range(100))
    assert one.executed and two.executed


async def test_fragmented_requests_stay_together_with_two_listeners(make_config):
    """Fragments of one request must reach one backend of a Shared subscription."""
    config = make_config(max_payload_size=4000)
    one, two = Handler(config.topic), Handler(config.topic)
    blobs = [os.urandom(20_000).hex() for _ in range(10)]
    async with (
        running_listener(one, config),
        running_listener(two, config),
        AsyncClient(config, timeout=timeout(20)) as client,
    ):
        sizes = await asyncio.gather(
            *(
                client.call({"op": "size", "value": b, "id": i})
                for i, b in enumerate(blobs)
            )
        )
    assert sizes == [len(b) for b in blobs]


async def test_request_above_the_backends_limit_is_refused(make_config):
    config = make_config(max_request_size=100_000, max_payload_size=10_000)
    async with (
        running_listener(Handler(config.topic), config),
        AsyncClient(config) as client,
    ):
        with pytest.raises(RemoteError, match="more than the limit of 100000 bytes"):
            await client.call({"op": "size", "value": "y" * 200_000})
        assert await client.call({"op": "size", "value": "y" * 50_000}) == 50_000


async def test_in_flight_work_finishes_on_stop(make_config):
    config = make_config()
    handler = Handler(config.topic)
    async with AsyncClient(config) as client:
        async with running_listener(handler, config):
            call = asyncio.create_task(client.call({"op": "sleep", "seconds": 0.5}))
            await asyncio.sleep(0.2)
        # the listener has stopped, but only after answering
        assert await asyncio.wait_for(call, timeout(5)) is None


async def test_backend_gone_mid_request_gives_timeout_not_hang(make_config):
    config = make_config()
    handler = Handler(config.topic)
    handler.release.clear()
    async with AsyncClient(config) as client:
        from dasf_geo.transport.backend import Listener

        listener = Listener(handler, config)
        task = asyncio.create_task(listener.run())
        await asyncio.wait_for(listener.connected.wait(), timeout(10))
        call = asyncio.create_task(
            client.request(
                json.dumps({"op": "wait"}).encode(), timeout=1.0, what="wait()"
            )
        )
        await asyncio.sleep(0.2)
        task.cancel()  # the backend dies without answering
        with pytest.raises(RequestTimeout):
            await call
        handler.release.set()


async def test_unknown_message_type_gets_an_error_reply(make_config):
    config = make_config()
    async with (
        running_listener(Handler(config.topic), config),
        AsyncClient(config) as client,
    ):
        _, fut = await raw_request(client, config, b"", message_type="shout")
        reply = await asyncio.wait_for(fut, timeout(10))
    assert reply.status == "error"
    assert reply.text() == "unsupported message type 'shout'"


def test_blocking_client_from_threads(make_config):
    config = make_config(max_workers=4)
    handler = Handler(config.topic)
    from concurrent.futures import ThreadPoolExecutor

    with listener_thread(handler, config):
        with Client(config, timeout=timeout(10)) as client:
            client.ping()
            with ThreadPoolExecutor(8) as pool:
                results = list(
                    pool.map(
                        lambda i: client.call({"op": "echo", "value": i}), range(200)
                    )
                )
        assert results == list(range(200))


def test_blocking_client_timeout_names_the_call_and_the_client_goes_on(make_config):
    """The blocking client's own timer: exact message, then the late reply is
    dropped and the next call gets its own answer."""
    config = make_config(topic="slow-blocking", max_workers=2)
    handler = Handler(config.topic)
    handler.release.clear()

    with (
        listener_thread(handler, config),
        Client(config, timeout=timeout(10)) as client,
    ):
        client.ping()  # connected: the next request takes the fast path
        with pytest.raises(RequestTimeout) as info:
            client.request(
                json.dumps({"op": "wait"}).encode(), timeout=0.3, what="wait()"
            )
        assert str(info.value) == (
            "no reply from topic 'slow-blocking' to wait() within 0.3 s"
        )
        assert info.value.topic == "slow-blocking"
        handler.release.set()  # the late reply arrives and is dropped
        assert client.call({"op": "echo", "value": 7}) == 7
        assert client._async._pending == {}


async def test_progress_events_for_a_fragmented_reply(make_config):
    config = make_config(max_payload_size=100_000)
    events: list[dict] = []
    async with (
        running_listener(Handler(config.topic), config),
        AsyncClient(config) as client,
    ):
        result = await client.call(
            {"op": "blob", "n": 1_000_000}, progress=events.append
        )
        assert (
            await client.call({"op": "echo", "value": 1}, progress=events.append) == 1
        )
    assert result == "x" * 1_000_000
    total = len(json.dumps(result))
    assert all(e["kind"] == "transfer" and e["total"] == total for e in events)
    received = [e["received"] for e in events]
    assert received == sorted(received) and len(received) > 5
    assert events[-1] == {
        "kind": "transfer",
        "received": total,
        "total": total,
        "done": True,
    }
    assert [e["done"] for e in events].count(True) == 1  # none for the small reply


async def test_upload_events_for_a_fragmented_request(make_config):
    config = make_config(max_payload_size=100_000)
    events: list[dict] = []
    async with (
        running_listener(Handler(config.topic), config),
        AsyncClient(config) as client,
    ):
        request = {"op": "size", "value": "y" * 1_000_000}
        size = await client.call(request, progress=events.append)
        small = await client.call({"op": "echo", "value": 1}, progress=events.append)
    assert (size, small) == (1_000_000, 1)
    total = len(json.dumps(request))
    uploads = [e for e in events if e["kind"] == "upload"]
    assert all(e["total"] == total for e in uploads)
    sent = [e["sent"] for e in uploads]
    assert sent == sorted(sent) and len(sent) == math.ceil(total * 4 / 3 / 100_000)
    assert uploads[-1] == {
        "kind": "upload",
        "sent": total,
        "total": total,
        "done": True,
    }
    assert [e["done"] for e in uploads].count(True) == 1  # none for the small one


def test_progress_bar_draws_and_closes():
    import io

    from dasf_geo.transport.progress import ProgressBar, terminal_progress

    out = io.StringIO()
    bar = ProgressBar("get_data()", out, min_bytes=10)
    bar({"kind": "transfer", "received": 5, "total": 100, "done": False})
    bar({"kind": "report", "report": {"step_message": "reading", "status": "running"}})
    bar({"kind": "transfer", "received": 100, "total": 100, "done": True})
    text = out.getvalue()
    assert "get_data()" in text and "get_data(): reading [running]" in text
    assert bar._bar is None
    # an upload bar, then the reply's: one after the other
    both = ProgressBar("put()", out, min_bytes=10)
    both({"kind": "upload", "sent": 50, "total": 100, "done": False})
    assert both._bar is not None and both._bar.desc == "put() (sending)"
    both({"kind": "upload", "sent": 100, "total": 100, "done": True})
    assert both._bar is None
    both({"kind": "transfer", "received": 10, "total": 100, "done": False})
    assert both._bar.desc == "put()"
    both.close()
    small = ProgressBar("x", out, min_bytes=1000)
    small({"kind": "transfer", "received": 5, "total": 100, "done": False})
    assert small._bar is None
    assert terminal_progress("x", io.StringIO()) is None  # not a terminal


async def test_progress_reports_arrive_in_order_before_the_reply(make_config):
    config = make_config()
    events: list[dict] = []
    async with (
        running_listener(Handler(config.topic), config),
        AsyncClient(config) as client,
    ):
        assert (
            await client.call({"op": "report", "n": 2}, progress=events.append) is None
        )
    reports = [e["report"] for e in events]
    assert all(e["kind"] == "report" for e in events)
    # enter, 2 x (submit child, complete child), exit
    assert [r["status"] for r in reports] == ["running"] * 5 + ["success"]
    assert [len(r["children"]) for r in reports] == [0, 1, 1, 2, 2, 2]
    final = reports[-1]
    assert final["report_type"] == "tree" and final["step_message"] == "working"
    assert [c["report_id"] for c in final["children"]] == ["root.0", "root.1"]
    assert [c["status"] for c in final["children"]] == ["success", "success"]
