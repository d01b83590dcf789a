"""Per-call transfer options through a real broker and backend.

Fragment size, compression and the hard size limit, set per call, per
``transfer_options`` block and per service; hostile option properties; a
backend that ignores the options (as demessaging does).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
from typing import Any

import numpy as np
import pytest
import xarray as xr

from dasf_geo import (
    BackendModule,
    PayloadTooLarge,
    TransferOptions,
    configure,
    transfer_options,
)
from dasf_geo.data import BINARY_MEDIA_TYPES, DataOptions, PartWriter
from dasf_geo.exceptions import FragmentError, RemoteError
from dasf_geo.protocol.options import EXT_COMPRESSION, EXT_FRAGMENT_SIZE, EXT_MAX_SIZE
from dasf_geo.transport.backend import ModuleHandler
from dasf_geo.transport.client import AsyncClient, Client
from dasf_geo.transport.dynamic import aconnect, encode_request
from tests.conftest import timeout
from tests.transport.conftest import Handler, raw_request, running_listener
from tests.transport.test_faults import VALUE, fake_backend, leftover_files

HDF5 = b"\x89HDF\r\n\x1a\n"  # NetCDF4 files are HDF5 files
NETCDF3 = b"CDF"

#: JSON of a 100,000-character string: 100,002 bytes, 133,336 base64 chars
BLOB = {"op": "blob", "n": 100_000}
BLOB_CHARS = 133_336


def count_fragments() -> tuple[list[int], Any]:
    """A progress callback counting the reply's fragments, and its count."""
    seen = [0]

    def on_progress(info: dict[str, Any]) -> None:
        if info["kind"] == "transfer":
            seen[0] += 1

    return seen, on_progress


def count_sent(client: AsyncClient) -> list[int]:
    """Count the messages ``client`` sends from now on."""
    sent = [0]
    producer = client._producer
    submit_now = producer.submit_now  # every send ends here

    def counting_submit_now(*args: Any, **kwargs: Any) -> Any:
        sent[0] += 1
        return submit_now(*args, **kwargs)

    producer.submit_now = counting_submit_now  # type: ignore[method-assign]
    return sent


async def test_the_reply_comes_in_fragments_of_the_asked_size(make_config):
    config = make_config(topic="opt-frag")
    async with (
        running_listener(Handler(config.topic), config),
        AsyncClient(config) as client,
    ):
        seen, on_progress = count_fragments()
        value = await client.call(
            BLOB, progress=on_progress, options=TransferOptions(fragment_size=10_000)
        )
        assert value == "x" * 100_000
        assert seen[0] == math.ceil(BLOB_CHARS / 10_000)
        # without the option: one message (no fragment, no transfer event)
        seen, on_progress = count_fragments()
        assert await client.call(BLOB, progress=on_progress) == "x" * 100_000
        assert seen[0] == 0


async def test_a_backend_never_sends_fragments_above_its_own_limit(make_config):
    config = make_config(topic="opt-frag-cap", max_payload_size=20_000)
    backend = Handler(config.topic)
    async with running_listener(backend, config):
        caller = make_config(topic="opt-frag-cap")  # the default 512,000
        async with AsyncClient(caller) as client:
            seen, on_progress = count_fragments()
            value = await client.call(
                BLOB,
                progress=on_progress,
                options=TransferOptions(fragment_size=100_000),
            )
    assert value == "x" * 100_000
    assert seen[0] == math.ceil(BLOB_CHARS / 20_000)


async def test_the_request_is_cut_with_the_asked_size(make_config):
    config = make_config(topic="opt-frag-req")
    async with (
        running_listener(Handler(config.topic), config),
        AsyncClient(config) as client,
    ):
        sent = count_sent(client)
        request = {"op": "size", "value": "y" * 30_000}
        with transfer_options(fragment_size=4096):
            assert await client.call(request, timeout=timeout(30)) == 30_000
        chars = len(base64.b64encode(json.dumps(request).encode()))
        assert sent[0] == math.ceil(chars / 4096)
        sent[0] = 0
        assert await client.call(request, timeout=timeout(30)) == 30_000
        assert sent[0] == 1


async def test_a_request_above_max_size_is_not_sent(make_config):
    config = make_config(topic="opt-max-req")
    backend = Handler(config.topic)
    async with running_listener(backend, config), AsyncClient(config) as client:
        sent = count_sent(client)
        request = {"op": "size", "id": 1, "value": "y" * 2000}
        size = len(json.dumps(request))
        with pytest.raises(PayloadTooLarge) as caught:
            await client.call(request, options=TransferOptions(max_size=1000))
        assert str(caught.value) == (
            f"the request to the request for topic 'opt-max-req' is {size:,} bytes, "
            "above the limit of 1,000 bytes (max_size); it was not sent"
        )
        assert (caught.value.size, caught.value.limit) == (size, 1000)
        assert sent[0] == 0 and backend.executed == []

        # the same through the blocking client, and in a block
        def blocking_calls() -> Any:
            blocking = Client(config)
            try:
                with transfer_options(max_size=1000), pytest.raises(PayloadTooLarge):
                    blocking.call(request)
                return blocking.call({**request, "value": "z"})
            finally:
                blocking.close()

        assert await asyncio.to_thread(blocking_calls) == 1
    assert backend.executed == [1]


async def test_the_backend_refuses_a_reply_above_max_size(make_config):
    config = make_config(topic="opt-max-reply")
    backend = Handler(config.topic)
    async with running_listener(backend, config), AsyncClient(config) as client:
        seen, on_progress = count_fragments()
        with pytest.raises(PayloadTooLarge) as caught:
            await client.call(
                BLOB, progress=on_progress, options=TransferOptions(max_size=50_000)
            )
        assert str(caught.value) == (
            "the backend on topic 'opt-max-reply' did not send its reply: the reply "
            "is 100,002 bytes (100 kB), above the caller's limit of 50,000 bytes "
            "(50 kB) (max_size); ask for less data or raise the limit"
        )
        assert (caught.value.size, caught.value.limit) == (100_002, 50_000)
        assert seen[0] == 0  # nothing of the reply was sent
        # exactly at the limit it is sent; the backend keeps serving
        value = await client.call(BLOB, options=TransferOptions(max_size=100_002))
        assert value == "x" * 100_000


async def test_a_backend_that_ignores_max_size_is_cut_off(make_config):
    """demessaging backends ignore dasfGeoMaxSize: the caller stops receiving."""
    config = make_config(topic="opt-max-ignored", spool_threshold=1000)
    before = leftover_files()
    async with fake_backend(config, VALUE, lambda f: f), AsyncClient(config) as client:
        with pytest.raises(PayloadTooLarge) as caught:
            await client.call(
                {"op": "any"},
                timeout=timeout(30),
                options=TransferOptions(max_size=20_000),
            )
    assert isinstance(caught.value, FragmentError)
    assert caught.value.limit == 20_000
    assert "above the limit of 20,000 bytes (20 kB) (max_size)" in str(caught.value)
    assert leftover_files() <= before


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (
            {EXT_COMPRESSION: "11"},
            "property 'dasfGeoCompression' must be a zlib level 1-9, got 11",
        ),
        (
            {EXT_FRAGMENT_SIZE: "12"},
            "property 'dasfGeoFragmentSize' must be an integer of at least 1024 "
            "(base64 characters), got 12",
        ),
        (
            {EXT_MAX_SIZE: "lots"},
            "property 'dasfGeoMaxSize' must be a decimal integer, got 'lots'",
        ),
    ],
)
async def test_malformed_option_properties_get_an_error_reply(
    make_config, props, message
):
    config = make_config(topic="opt-hostile")
    backend = Handler(config.topic)
    async with running_listener(backend, config), AsyncClient(config) as client:
        payload = base64.b64encode(
            json.dumps({"op": "echo", "id": 1, "value": 1}).encode()
        )
        ack, fut = await raw_request(client, config, payload, properties=props)
        assert ack["result"] == "ok"
        reply = await asyncio.wait_for(fut, timeout(10))
        assert reply.status == "error"
        assert reply.text() == f"error in the request's options: {message}"
        assert backend.executed == []
        # the backend goes on serving
        assert await client.call({"op": "echo", "id": 2, "value": 5}) == 5
    assert backend.executed == [2]


# --- compression, with a real backend module ---------------------------------


def zeros(n: int = 100_000) -> xr.Dataset:
    return xr.Dataset(
        {"t": (("x",), np.zeros(n), {"units": "K"})},
        coords={"x": ("x", np.arange(n, dtype="float64"), {"units": "m"})},
        attrs={"Conventions": "CF-1.8"},
    )


def echo(ds: xr.Dataset) -> xr.Dataset:
    """Return ``ds`` as it arrived."""
    return ds


def first_bytes(ds: xr.Dataset) -> str:
    """The first bytes of the file the Dataset argument was read from."""
    source = ds.encoding.get("source")
    if not source:
        return "memory"
    with open(source, "rb") as fh:
        return fh.read(8).hex()


def module_with(config: Any, port: int, *members: Any) -> Any:
    """A backend module of ``members`` on ``config.topic``."""
    return BackendModule.create_model(
        members=list(members),
        messaging_config=dict(topic=config.topic, host="127.0.0.1", port=port),
    )


def with_options(func: Any, **options: Any) -> Any:
    """``func`` configured with these data options."""
    return configure(data_options=DataOptions(**options))(func)


def module_for(config: Any, port: int) -> Any:
    echo3 = with_options(_echo3, format="netcdf3")
    return module_with(config, port, echo, echo3, first_bytes)


def _echo3(ds: xr.Dataset) -> xr.Dataset:
    """Return ``ds`` as NetCDF3, always (as for the web map)."""
    return ds


async def test_compression_makes_the_binary_reply_netcdf4(make_config, broker):
    config = make_config(topic="opt-zlib")
    ds = zeros()
    handler = ModuleHandler(module_for(config, broker.port))
    async with running_listener(handler, config), AsyncClient(config) as client:
        request = encode_request({"func_name": "echo", "ds": ds})
        plain = await client.request(
            json.dumps(request).encode(), accept=BINARY_MEDIA_TYPES
        )
        packed = await client.request(
            json.dumps(request).encode(),
            accept=BINARY_MEDIA_TYPES,
            options=TransferOptions(compression=4),
        )
        assert bytes(plain.payload[:3]) == NETCDF3
        assert bytes(packed.payload[:8]) == HDF5
        assert len(packed.payload) < len(plain.payload) / 20
        xr.testing.assert_identical(packed.value().decode().load(), ds)
        # a function that forces NetCDF3 sends it uncompressed
        forced = await client.request(
            json.dumps({**request, "func_name": "_echo3"}).encode(),
            accept=BINARY_MEDIA_TYPES,
            options=TransferOptions(compression=4),
        )
        assert bytes(forced.payload[:3]) == NETCDF3


async def test_compression_of_a_json_reply_and_of_arguments(make_config, broker):
    config = make_config(topic="opt-zlib-json")
    ds = zeros()
    handler = ModuleHandler(module_for(config, broker.port))
    async with running_listener(handler, config), AsyncClient(config) as client:
        # a JSON caller (no dasfGeoAccept): base64 NetCDF4 inside the JSON
        request = encode_request({"func_name": "echo", "ds": ds}, compression=4)
        assert base64.b64decode(request["ds"])[:8] == HDF5
        with transfer_options(compression=4):
            value = await client.call(request)
        assert base64.b64decode(value)[:8] == HDF5
        # a Dataset argument as a compressed binary part
        await client.ping()
        writer = PartWriter(compression=4)
        try:
            encoded = encode_request({"func_name": "first_bytes", "ds": ds}, writer)
            from dasf_geo.transport._common import OutgoingParts

            assert writer.parts[0].size < 20_000
            payload = OutgoingParts(json.dumps(encoded).encode(), writer.parts)
            reply = await client.request(payload)
        finally:
            writer.close()
        assert json.loads(reply.text()) in (HDF5.hex(), "memory")


async def test_a_service_applies_its_transfer_options(make_config, broker):
    config = make_config(topic="opt-service")
    ds = zeros()
    handler = ModuleHandler(module_for(config, broker.port))
    async with running_listener(handler, config):
        service = await aconnect(
            config.topic,
            config=config,
            transfer=TransferOptions(max_size=100_000),
            progress=False,
        )
        try:
            with pytest.raises(PayloadTooLarge, match=r"above the limit of 100,000"):
                await service.echo(ds)  # the NetCDF argument alone is larger
            with transfer_options(compression=6):
                # the block keeps the service's limit and adds compression
                back = await service.echo(ds)
            xr.testing.assert_identical(back.load(), ds)
            assert service.transfer == TransferOptions(max_size=100_000)
        finally:
            await service.close()


def _undrawable() -> xr.Dataset:
    """A reply the web map cannot draw (an int64 variable), checked on output."""
    return zeros(10).assign(count=(("x",), np.ones(10, "i8")))


async def test_a_reply_that_fails_its_output_check_names_the_rule_not_pydantic(
    make_config, broker
):
    config = make_config(topic="opt-demap")
    module = module_with(config, broker.port, with_options(_undrawable, demap="check"))
    async with (
        running_listener(ModuleHandler(module), config),
        AsyncClient(config) as client,
    ):
        for accept in (None, BINARY_MEDIA_TYPES):  # a JSON and a binary caller
            with pytest.raises(RemoteError) as info:
                await client.call({"func_name": "_undrawable"}, accept=accept)
            text = info.value.message
            assert text.startswith("error executing request: DataError: the reply is ")
            assert "rule demap-dtype" in text
            assert "PydanticSerializationError" not in text


def _no_conventions() -> xr.Dataset:
    """A result that breaks the CF rule its function makes strict."""
    ds = zeros(10)
    del ds.attrs["Conventions"]
    return ds


async def test_a_result_that_fails_validation_is_not_blamed_on_the_request(
    make_config, broker
):
    from dasf_geo.exceptions import RemoteValidationError

    config = make_config(topic="opt-result")
    module = module_with(
        config, broker.port, with_options(_no_conventions, cf="strict")
    )
    async with (
        running_listener(ModuleHandler(module), config),
        AsyncClient(config) as client,
    ):
        with pytest.raises(RemoteError) as info:
            await client.call({"func_name": "_no_conventions"})
    assert not isinstance(info.value, RemoteValidationError)
    text = info.value.message
    assert text.startswith(
        "error executing request: ResultError: the function ran, but its result "
        "is not valid: 1 validation error for "
    )
    assert "rule conventions-attribute" in text


# --- per-function options: @configure(transfer=...) --------------------------

RUNS: list[str] = []


def blob(n: int) -> str:
    """``n`` times "x"."""
    RUNS.append("blob")
    return "x" * n


def length(text: str) -> int:
    """The length of ``text``."""
    RUNS.append("length")
    return len(text)


@configure(transfer={"fragment_size": 20_000, "max_size": 90_000})
class Store:
    """A class whose methods share the class's transfer options."""

    def blob(self, n: int) -> str:
        """``n`` times "y"."""
        return "y" * n

    @configure(transfer={"max_size": 50})
    def small(self, n: int) -> str:
        """``n`` times "z", under its own, smaller limit."""
        return "z" * n


def transfer_module(config: Any, port: int) -> Any:
    limited = {"fragment_size": 10_000, "max_size": "80kB"}
    return module_with(
        config,
        port,
        configure(transfer=limited)(blob),
        configure(transfer={"max_size": 1_000})(length),
        Store,
        configure(transfer={"compression": 4})(_echo_packed),
        configure(transfer={"max_size": 1_000})(fetch),
    )


def fetch(n: int) -> str:
    """Fails the way a call to another service above its limit fails."""
    raise PayloadTooLarge("the other service's reply is too large", size=n, limit=1)


def _echo_packed(ds: xr.Dataset) -> xr.Dataset:
    """Return ``ds``, compressed by the function's own options."""
    return ds


def blob_chars(n: int) -> int:
    """base64 characters of the JSON reply of ``n`` characters."""
    return math.ceil((n + 2) / 3) * 4


async def test_a_function_cuts_its_replies_with_its_own_fragment_size(
    make_config, broker
):
    config = make_config(topic="fn-frag")
    handler = ModuleHandler(transfer_module(config, broker.port))
    async with running_listener(handler, config), AsyncClient(config) as client:
        for asked, expected in [(None, 10_000), (5_000, 5_000), (50_000, 10_000)]:
            seen, on_progress = count_fragments()
            value = await client.call(
                {"func_name": "blob", "n": 70_000},
                progress=on_progress,
                options=TransferOptions(fragment_size=asked),
            )
            assert value == "x" * 70_000
            # the smaller of the caller's and the function's size wins
            assert seen[0] == math.ceil(blob_chars(70_000) / expected), asked
        # a method: the class's fragment size
        seen, on_progress = count_fragments()
        call = {"class_name": "Store", "function": {"func_name": "blob", "n": 70_000}}
        assert await client.call(call, progress=on_progress) == "y" * 70_000
        assert seen[0] == math.ceil(blob_chars(70_000) / 20_000)


async def test_a_function_refuses_a_reply_above_its_max_size(make_config, broker):
    config = make_config(topic="fn-max-reply")
    handler = ModuleHandler(transfer_module(config, broker.port))
    async with running_listener(handler, config), AsyncClient(config) as client:
        with pytest.raises(PayloadTooLarge) as caught:
            await client.call({"func_name": "blob", "n": 100_000})
        assert str(caught.value) == (
            "the backend on topic 'fn-max-reply' did not send its reply: the reply "
            "is 100,002 bytes (100 kB), above the limit of 80,000 bytes (80 kB) set "
            "by function 'blob' (max_size); ask for less data or raise the limit"
        )
        assert (caught.value.size, caught.value.limit) == (100_002, 80_000)
        # a caller's smaller limit is the one named
        with pytest.raises(PayloadTooLarge, match="above the caller's limit of 60,000"):
            await client.call(
                {"func_name": "blob", "n": 100_000},
                options=TransferOptions(max_size=60_000),
            )
        # a caller cannot raise the function's limit
        with pytest.raises(PayloadTooLarge, match="set by function 'blob'"):
            await client.call(
                {"func_name": "blob", "n": 100_000},
                options=TransferOptions(max_size=10**9),
            )
        # a method's own limit wins over its class's
        call = {"class_name": "Store", "function": {"func_name": "small", "n": 100}}
        with pytest.raises(PayloadTooLarge, match=r"set by method 'Store\.small'"):
            await client.call(call)
        call = {"class_name": "Store", "function": {"func_name": "blob", "n": 95_000}}
        with pytest.raises(PayloadTooLarge, match=r"set by method 'Store\.blob'"):
            await client.call(call)
        # below the limits all of it arrives, and the backend kept serving
        assert await client.call({"func_name": "blob", "n": 79_000}) == "x" * 79_000


async def test_a_function_refuses_a_request_above_its_max_size_before_running(
    make_config, broker
):
    config = make_config(topic="fn-max-request")
    handler = ModuleHandler(transfer_module(config, broker.port))
    RUNS.clear()
    async with running_listener(handler, config), AsyncClient(config) as client:
        request = {"func_name": "length", "text": "a" * 2_000}
        size = len(json.dumps(request).encode())
        with pytest.raises(PayloadTooLarge) as caught:
            await client.call(request)
        assert str(caught.value) == (
            "the backend on topic 'fn-max-request' refused the request: the "
            f"request is {size:,} bytes, above the limit of 1,000 bytes set by "
            "function 'length' (max_size); send less data or raise the limit"
        )
        assert (caught.value.size, caught.value.limit) == (size, 1_000)
        assert RUNS == []  # the function never ran
        assert await client.call({"func_name": "length", "text": "abc"}) == 3
        assert RUNS == ["length"]
        # a PayloadTooLarge raised by the function is the function's error
        with pytest.raises(RemoteError) as failed:
            await client.call({"func_name": "fetch", "n": 5})
        assert not isinstance(failed.value, PayloadTooLarge)
        assert failed.value.message == (
            "error executing request: PayloadTooLarge: the other service's reply "
            "is too large"
        )


async def test_a_function_compresses_its_result_by_its_transfer_options(
    make_config, broker
):
    config = make_config(topic="fn-zlib")
    ds = zeros()
    handler = ModuleHandler(transfer_module(config, broker.port))
    async with running_listener(handler, config), AsyncClient(config) as client:
        request = encode_request({"func_name": "_echo_packed", "ds": ds})
        reply = await client.request(
            json.dumps(request).encode(), accept=BINARY_MEDIA_TYPES
        )
        assert bytes(reply.payload[:8]) == HDF5
        xr.testing.assert_identical(reply.value().decode().load(), ds)


def test_transfer_and_data_options_must_agree_on_compression():
    from dasf_geo.exceptions import ConfigurationError

    both = configure(
        transfer={"compression": 4}, data_options=DataOptions(compression=6)
    )(_echo_packed)
    with pytest.raises(ConfigurationError) as caught:
        BackendModule.create_model(members=[both], messaging_config=dict(topic="t"))
    assert str(caught.value) == (
        "function '_echo_packed': data_options asks for compression=6 and transfer "
        "for compression=4; give the level once"
    )


@pytest.mark.parametrize(
    ("transfer", "problem"),
    [
        ({"max_size": "5 parsecs"}, "max_size: '5 parsecs' is not a size"),
        ({"fragment_size": 10}, "fragment_size must be an integer of at least 1024"),
        ({"compression": True}, "compression must be a zlib level 1-9, got True"),
        ({"speed": 1}, "unknown transfer option(s) 'speed'"),
        (5, "transfer options must be a TransferOptions or a dict"),
    ],
)
def test_configure_transfer_rejects_bad_values(transfer, problem):
    from dasf_geo.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError) as caught:
        configure(transfer=transfer)(blob)
    assert str(caught.value).startswith(
        "@configure on function 'blob': option 'transfer': Value error, "
    )
    assert problem in str(caught.value)
