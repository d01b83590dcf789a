"""Multipart requests through a real broker: Dataset arguments as raw NetCDF.

A real backend module (``ModuleHandler``) answers; requests are made with the
transport's own client, and the broken ones by editing the parts or the
``dasfGeoParts`` property of a good request. Each fault ends with an error
reply naming the problem, the backend goes on serving, and no temporary file
is left behind — in memory and with the payload reassembled in a file.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

import numpy as np
import pytest
import xarray as xr

import dasf_geo
from dasf_geo import BackendModule
from dasf_geo.data import PARTS_CONTEXT, OutgoingPart, PartWriter
from dasf_geo.exceptions import RemoteError, RemoteValidationError
from dasf_geo.protocol.constants import EXT_FEATURES, EXT_PARTS, MessageType
from dasf_geo.protocol.parts import parts_property
from dasf_geo.transport._common import OutgoingParts
from dasf_geo.transport.backend import BackgroundListener, ModuleHandler
from dasf_geo.transport.client import AsyncClient, close_clients
from dasf_geo.transport.dynamic import encode_request
from tests.conftest import timeout
from tests.transport.conftest import Handler, running_listener
from tests.transport.test_faults import leftover_files

NC = "application/x-netcdf; xarray=Dataset"
#: a spool threshold that puts every fragmented payload into a FileBuffer
IN_A_FILE = 1000


def spool_config(make_config: Any, topic: str, spool: int, **kws: Any) -> Any:
    """A config whose requests are reassembled in memory or in a file.

    Only fragmented payloads are spooled, so the file case cuts small ones.
    """
    if spool == IN_A_FILE:
        kws.setdefault("max_payload_size", 4000)
    return make_config(topic=topic, spool_threshold=spool, **kws)


def echo(ds: xr.Dataset) -> xr.Dataset:
    """Return ``ds`` as it arrived."""
    return ds


def describe(
    ds: xr.Dataset, da: xr.DataArray | None = None, scale: float = 1.0
) -> dict:
    """Facts about the arguments, and where the Dataset was read from."""
    return {
        "sum": float(ds["t"].sum()) * scale,
        "da": None if da is None else float(da.sum()),
        "source": str(ds.encoding.get("source", "")),
        "lazy": ds["t"].chunks is not None,
    }


class Grid:
    """A class whose constructor takes a Dataset."""

    def __init__(self, ds: xr.Dataset) -> None:
        self.ds = ds

    def total(self, da: xr.DataArray) -> float:
        """Sum of the constructor's Dataset and ``da``."""
        return float(self.ds["t"].sum()) + float(da.sum())


def grid(n: int = 3, seed: int = 0) -> xr.Dataset:
    values = np.random.default_rng(seed).random((n, 4), dtype="float64")
    values[0, 0] = np.nan
    return xr.Dataset(
        {"t": (("y", "x"), values, {"units": "K"})},
        coords={
            "y": ("y", np.arange(n, dtype="float64"), {"units": "m", "axis": "Y"}),
            "x": ("x", np.arange(4.0), {"units": "m", "axis": "X"}),
        },
        attrs={"Conventions": "CF-1.8"},
    )


def module_for(config: Any, port: int) -> Any:
    return BackendModule.create_model(
        members=[echo, describe, Grid],
        messaging_config=dict(topic=config.topic, host="127.0.0.1", port=port),
    )


def multipart(request: dict[str, Any], writer: PartWriter) -> OutgoingParts:
    """The multipart payload of ``request`` (Python values) with ``writer``."""
    encoded = encode_request(request, writer)
    return OutgoingParts(json.dumps(encoded).encode(), writer.parts)


def raw_part(data: bytes, media_type: str = NC) -> OutgoingPart:
    file = tempfile.TemporaryFile()  # noqa: SIM115  # closed by the test's writer
    file.write(data)
    return OutgoingPart(file, len(data), media_type)


async def test_backends_advertise_parts_and_others_do_not(make_config, broker):
    config = make_config(topic="parts-features")
    module = module_for(config, broker.port)
    async with (
        running_listener(ModuleHandler(module), config),
        AsyncClient(config) as client,
    ):
        assert client.features is None and not client.supports_parts
        for ask in (MessageType.PING, MessageType.INFO, MessageType.API_INFO):
            reply = await client.request(b"", message_type=ask, timeout=timeout(10))
            assert reply.properties[EXT_FEATURES] == "parts"
        await client.ping()
        assert client.supports_parts
    other = make_config(topic="parts-none")
    async with (
        running_listener(Handler(other.topic), other),
        AsyncClient(other) as client,
    ):
        await client.ping()
        assert client.features == frozenset() and not client.supports_parts


@pytest.mark.parametrize("spool", [32 << 20, IN_A_FILE], ids=["memory", "file"])
async def test_dataset_arguments_round_trip_exactly(make_config, broker, spool):
    config = spool_config(make_config, f"parts-echo-{spool}", spool)
    module = module_for(config, broker.port)
    ds = grid(200)
    before = leftover_files()
    async with (
        running_listener(ModuleHandler(module), config),
        AsyncClient(config, timeout=timeout(30)) as client,
    ):
        await client.ping()
        with PartWriter() as writer:
            payload = multipart({"func_name": "echo", "ds": ds}, writer)
            assert payload.properties[EXT_PARTS].startswith(
                f'[{{"size":{len(payload.head)},"type":"application/json"}}'
            )
            reply = await client.request(payload, accept=["x/none"])
        assert reply.status == "success", reply.text()
        back = dasf_geo.data.to_dataset(reply.json())
        xr.testing.assert_identical(back, ds)
        assert back["t"].values.tobytes() == ds["t"].values.tobytes()  # NaN too
        del reply  # the reply's own reassembly file goes with it
        with PartWriter() as writer:
            request = {"func_name": "describe", "ds": ds, "da": ds["t"], "scale": 2}
            facts = await client.call(encode_request(request, writer), parts=writer)
        assert facts["sum"] == float(ds["t"].sum()) * 2
        assert facts["da"] == float(ds["t"].sum())
        # in a file, the part was read from a temporary file of its own
        assert facts["source"].endswith(".part") == (spool == IN_A_FILE)
    assert leftover_files() <= before


async def test_a_large_argument_in_a_file_is_opened_lazily(
    make_config, broker, monkeypatch
):
    monkeypatch.setattr(dasf_geo.data._binary, "LAZY_THRESHOLD", 1000)
    config = spool_config(make_config, "parts-lazy", IN_A_FILE)
    module = module_for(config, broker.port)
    ds = grid(200)  # 6,400 bytes of values: above the lowered threshold
    before = leftover_files()
    async with running_listener(ModuleHandler(module), config):
        svc = await dasf_geo.aconnect(config.topic, config=config, progress=False)
        try:
            facts = await svc.describe(ds)
            # the echo is written from the lazily opened file, then removed
            back = await svc.echo(ds)
            small = await svc.describe(grid(3))
        finally:
            await svc.close()
    assert facts["lazy"] and facts["source"].endswith(".part")
    assert facts["sum"] == float(ds["t"].sum())
    xr.testing.assert_identical(back, ds)
    assert not small["lazy"]  # below the threshold: loaded
    assert leftover_files() <= before


async def test_the_dynamic_client_sends_parts_to_a_backend_that_takes_them(
    make_config, broker
):
    config = spool_config(make_config, "parts-dynamic", IN_A_FILE)
    module = module_for(config, broker.port)
    handler = ModuleHandler(module)
    seen: list[Any] = []
    handle = handler.handle

    def spy(payload: Any, progress: Any = None, accept: Any = (), parts: Any = None):
        seen.append(None if parts is None else [p.media_type for p in parts])
        return handle(payload, progress, accept, parts=parts)

    handler.handle = spy  # type: ignore[method-assign]
    ds = grid(5)
    async with running_listener(handler, config):
        svc = await dasf_geo.aconnect(config.topic, config=config, progress=False)
        try:
            xr.testing.assert_identical(await svc.echo(ds), ds)
            total = await svc.Grid(ds).total(ds["t"])
            assert total == pytest.approx(2 * float(ds["t"].sum()))
            assert (await svc.describe(ds, scale=3))["sum"] == float(ds.t.sum()) * 3
        finally:
            await svc.close()
    assert seen == [
        [NC],
        [NC, "application/x-netcdf; xarray=DataArray"],
        [NC],
    ]


def test_stubs_learn_the_feature_with_one_ping_and_send_parts(make_config, broker):
    config = make_config(topic="parts-stubs")
    module = module_for(config, broker.port)
    handler = ModuleHandler(module)
    seen: list[Any] = []
    handle = handler.handle

    def spy(payload: Any, progress: Any = None, accept: Any = (), parts: Any = None):
        seen.append(parts is not None)
        return handle(payload, progress, accept, parts=parts)

    handler.handle = spy  # type: ignore[method-assign]
    ds = grid(4)
    try:
        with BackgroundListener(module, handler=handler):
            result = module.send_request({"func_name": "echo", "ds": ds})
            xr.testing.assert_identical(result.root, ds)
            module.send_request({"func_name": "describe", "ds": ds})
    finally:
        close_clients()
    assert seen == [True, True]


# --- faults --------------------------------------------------------------


def _sizes_off(request: OutgoingParts) -> None:
    sizes = [(len(request.head), "application/json")]
    sizes += [(p.size + 5, p.media_type) for p in request.parts]
    request.properties = {EXT_PARTS: parts_property(sizes)}


def _missing_part(request: OutgoingParts) -> None:
    request.head = request.head.replace(b'Part": 1', b'Part": 2')
    request.properties = OutgoingParts(request.head, request.parts).properties
    request.size = len(request.head) + sum(p.size for p in request.parts)


def _not_netcdf(request: OutgoingParts) -> None:
    request.parts[0] = raw_part(b"GIF89a, not NetCDF" * 10)
    request.properties = OutgoingParts(request.head, request.parts).properties
    request.size = len(request.head) + request.parts[0].size


def _unknown_type(request: OutgoingParts) -> None:
    part = request.parts[0]
    request.parts[0] = OutgoingPart(part.file, part.size, "text/csv")
    request.properties = OutgoingParts(request.head, request.parts).properties


def _unused_part(request: OutgoingParts) -> None:
    request.parts.append(raw_part(b"CDF\x01 spare"))
    request.properties = OutgoingParts(request.head, request.parts).properties
    request.size = len(request.head) + sum(p.size for p in request.parts)


def _not_json(request: OutgoingParts) -> None:
    request.properties = {EXT_PARTS: "[{'size': 1}]"}


FAULTS = [
    pytest.param(
        _sizes_off,
        RemoteError,
        r"error reading the request's parts: the parts add up to \d+ bytes, but "
        r"the payload has \d+ bytes",
        id="sizes-do-not-add-up",
    ),
    pytest.param(
        _missing_part,
        RemoteValidationError,
        "refers to binary part 2, but the request has only 1 binary part",
        id="placeholder-for-a-missing-part",
    ),
    pytest.param(
        _not_netcdf,
        RemoteValidationError,
        r"part 1 \(application/x-netcdf; xarray=Dataset, 180 bytes\) is not "
        r"application/x-netcdf data \(it starts with b'GIF8'\)",
        id="part-is-not-netcdf",
    ),
    pytest.param(
        _unknown_type,
        RemoteError,
        "part 1 has media type 'text/csv', which this backend does not take; it "
        "takes application/vnd.zarr",
        id="unknown-media-type",
    ),
    pytest.param(
        _unused_part,
        RemoteError,
        r"part 2 \(application/x-netcdf; xarray=Dataset, 10 bytes\) is not "
        "referred to by a '\\$dasfGeoPart' placeholder",
        id="part-without-placeholder",
    ),
    pytest.param(
        _not_json,
        RemoteError,
        "the dasfGeoParts property is invalid: not JSON",
        id="parts-property-not-json",
    ),
]


@pytest.mark.parametrize("spool", [32 << 20, IN_A_FILE], ids=["memory", "file"])
@pytest.mark.parametrize(("spoil", "error", "message"), FAULTS)
async def test_broken_multipart_requests_get_an_error_reply(
    make_config, broker, spool, spoil, error, message
):
    config = spool_config(make_config, "parts-faults", spool)
    module = module_for(config, broker.port)
    ds = grid(300)
    before = leftover_files()
    async with (
        running_listener(ModuleHandler(module), config),
        AsyncClient(config, timeout=timeout(30)) as client,
    ):
        with PartWriter() as writer:
            request = multipart({"func_name": "describe", "ds": ds}, writer)
            spoil(request)
            with pytest.raises(error, match=message) as info:
                await _call(client, request)
            for part in request.parts:
                part.file.close()
        if error is RemoteValidationError:
            assert info.value.errors[0]["loc"] == ["describe", "ds"]
        # the backend goes on serving, multipart requests included
        with PartWriter() as writer:
            request = {"func_name": "describe", "ds": ds}
            facts = await client.call(encode_request(request, writer), parts=writer)
        assert facts["sum"] == float(ds["t"].sum())
    assert leftover_files() <= before


async def _call(client: AsyncClient, payload: OutgoingParts) -> Any:
    from dasf_geo.transport.client import raise_for_status

    reply = await client.request(payload)
    return raise_for_status(reply, client.topic).json()


async def test_a_part_above_the_limit_is_refused_naming_it(make_config, broker):
    config = make_config(topic="parts-big", max_request_size=50_000)
    module = module_for(config, broker.port)
    before = leftover_files()
    async with (
        running_listener(ModuleHandler(module), config),
        AsyncClient(config, timeout=timeout(30)) as client,
    ):
        with PartWriter() as writer:
            request = multipart({"func_name": "echo", "ds": grid(5000)}, writer)
            with pytest.raises(RemoteError) as info:
                await _call(client, request)
        text = str(info.value)
        assert "more than the limit of 50000 bytes" in text
        assert "; part 1 (application/x-netcdf; xarray=Dataset, " in text
        assert text.endswith(" bytes) is above the limit of 50000 bytes")
        with PartWriter() as writer:
            small = encode_request({"func_name": "echo", "ds": grid(2)}, writer)
            assert await client.call(small, parts=writer)
    assert leftover_files() <= before


async def test_a_backend_without_parts_refuses_them(make_config):
    config = make_config(topic="parts-refused")
    async with (
        running_listener(Handler(config.topic), config),
        AsyncClient(config, timeout=timeout(30)) as client,
    ):
        with PartWriter() as writer:
            request = multipart({"func_name": "echo", "ds": grid(2)}, writer)
            with pytest.raises(RemoteError, match="does not take multipart requests"):
                await _call(client, request)
        assert await client.call({"op": "echo", "value": 1}) == 1


def test_the_json_part_is_what_json_callers_send_but_for_placeholders():
    ds = grid(2)
    with PartWriter() as writer:
        encoded = encode_request({"func_name": "echo", "ds": ds, "n": [1]}, writer)
        assert encoded == {"func_name": "echo", "ds": {"$dasfGeoPart": 1}, "n": [1]}
    plain = encode_request({"func_name": "echo", "ds": ds})
    assert isinstance(plain["ds"], str) and plain["ds"].startswith("Q0RGA")
    model = BackendModule.create_model(
        members=[echo], messaging_config=dict(topic="t")
    ).model_validate({"func_name": "echo", "ds": ds})
    with PartWriter() as writer:
        text = model.model_dump_json(context={PARTS_CONTEXT: writer})
    assert json.loads(text) == {"func_name": "echo", "ds": {"$dasfGeoPart": 1}}
