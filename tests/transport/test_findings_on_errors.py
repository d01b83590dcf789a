"""CF/crs findings of a call's arguments reach the caller when the call fails.

A real backend module answers through a real broker. An argument with a
``warn``-mode finding is checked, then the call fails (the function raises,
or another argument is invalid): the error reply carries the argument's
findings in ``dasfGeoFindings`` and the caller raises them as warnings
before it raises the error.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from typing import Any

import numpy as np
import pytest
import xarray as xr

import dasf_geo
from dasf_geo import BackendModule
from dasf_geo.cli.tool import main as tool_main
from dasf_geo.data import (
    CFConventionWarning,
    DataWarning,
    decode_reports,
    encode_base64_xarray,
)
from dasf_geo.exceptions import RemoteError, RemoteValidationError
from dasf_geo.protocol.constants import EXT_FINDINGS
from dasf_geo.transport.backend import ModuleHandler
from dasf_geo.transport.client import AsyncClient, Client
from tests.conftest import timeout
from tests.transport.conftest import listener_thread, running_listener

ARG_TEXT = (
    "ds: 1 CF finding(s): variable 't' attribute 'units': 'Kelvinn' is not a "
    'valid UDUNITS unit ([UT_UNKNOWN] Failed to parse unit "Kelvinn") '
    "[rule units-parseable]"
)


def grid(units: str = "Kelvinn") -> xr.Dataset:
    return xr.Dataset(
        {"t": (("x",), np.array([280.0, 281.0]), {"units": units})},
        attrs={"Conventions": "CF-1.8"},
    )


def encoded(ds: xr.Dataset) -> str:
    """The base64 NetCDF text of ``ds``, unchecked (as a foreign caller sends it)."""
    return encode_base64_xarray(ds)


def refuse(ds: xr.Dataset) -> float:
    """Fail after the argument was checked."""
    raise ValueError("no data for this region")


def scaled(ds: xr.Dataset, factor: int) -> float:
    """Sum of t times factor."""
    return float(ds["t"].sum()) * factor


def module_for(config: Any, port: int) -> Any:
    return BackendModule.create_model(
        members=[refuse, scaled],
        messaging_config=dict(topic=config.topic, host="127.0.0.1", port=port),
    )


def data_warnings(record: Any) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, DataWarning)]


def test_a_failed_call_warns_its_arguments_findings_before_the_error(
    make_config, broker
):
    config = make_config(topic="findings-errors")
    module = module_for(config, broker.port)
    with (
        listener_thread(ModuleHandler(module), config),
        dasf_geo.connect(config.topic, config=config, progress=False) as svc,
    ):
        # the function raises after the argument's check
        with (
            warnings.catch_warnings(record=True) as record,
            pytest.raises(RemoteError, match="no data for this region"),
        ):
            warnings.simplefilter("always")
            svc.refuse(grid())
        assert data_warnings(record) == [ARG_TEXT]
        # (a ResourceWarning of another test's socket, collected meanwhile,
        # is not this call's)
        assert [
            w.category for w in record if not issubclass(w.category, ResourceWarning)
        ] == [CFConventionWarning]
        assert [f.rule for f in record[0].message.findings] == ["units-parseable"]
        # another argument is invalid after ds was checked
        request = {"func_name": "scaled", "ds": encoded(grid()), "factor": "two"}
        with (
            Client(config, timeout=timeout(30)) as client,
            warnings.catch_warnings(record=True) as record,
            pytest.raises(RemoteValidationError) as exc,
        ):
            warnings.simplefilter("always")
            client.call(request)
        assert data_warnings(record) == [ARG_TEXT]
        assert [e["loc"][-1] for e in exc.value.errors] == ["factor"]
        # a clean argument: an error reply without findings
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(RemoteError, match="no data for this region"):
                svc.refuse(grid("K"))


async def test_the_error_reply_carries_the_findings_property(make_config, broker):
    config = make_config(topic="findings-error-reply")
    module = module_for(config, broker.port)
    payload = json.dumps({"func_name": "refuse", "ds": encoded(grid())}).encode()
    async with (
        running_listener(ModuleHandler(module), config),
        AsyncClient(config, timeout=timeout(30)) as client,
    ):
        reply = await client.request(payload)
    assert reply.status == "error"
    assert reply.text().startswith("error executing request: ValueError: no data")
    (report,) = decode_reports(reply.properties[EXT_FINDINGS])
    assert (report.kind, report.label, report.message) == ("CF", "ds", ARG_TEXT)
    assert reply.findings() == [report]


def test_dasf_geo_call_prints_a_failed_calls_findings_before_the_error(
    make_config, broker, capsys, monkeypatch
):
    # the backend runs in this process: its log records (the failed request)
    # go elsewhere, so that stderr holds what `dasf-geo call` printed
    backend_log = logging.getLogger("dasf_geo")
    monkeypatch.setattr(backend_log, "handlers", [logging.StreamHandler(io.StringIO())])
    monkeypatch.setattr(backend_log, "propagate", False)
    config = make_config(topic="findings-error-cli")
    module = module_for(config, broker.port)
    with listener_thread(ModuleHandler(module), config):
        code = tool_main(
            [
                "call",
                config.topic,
                "refuse",
                f"ds={encoded(grid())}",
                "--broker",
                broker.url,
                "--no-progress",
                "--timeout",
                str(timeout(30)),
            ]
        )
    _, err = capsys.readouterr()
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == f"warning: {ARG_TEXT}"
    assert "no data for this region" in "\n".join(lines[1:])
