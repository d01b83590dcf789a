"""datetime64 units through a real call: arguments and results, in the JSON
form (base64 NetCDF) and in binary parts and replies.

``s`` and ``ms`` keep their unit; ``us`` and ``ns`` come back as ``ns``,
which xarray decodes NetCDF times to (docs/data.md says why).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import xarray as xr

import dasf_geo
from dasf_geo import BackendModule
from dasf_geo.data import decode_base64_xarray, encode_base64_xarray
from dasf_geo.protocol.constants import EXT_ENCODING
from dasf_geo.transport.backend import ModuleHandler
from dasf_geo.transport.client import Client
from tests.conftest import timeout
from tests.transport.conftest import listener_thread


def later(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with ``when`` one second later."""
    return ds.assign(when=ds["when"] + np.timedelta64(1, "s"))


def units(ds: xr.Dataset) -> list[str]:
    """The dtypes of the times as the backend received them."""
    return [str(ds["time"].dtype), str(ds["when"].dtype)]


def module_for(config: Any, port: int) -> Any:
    return BackendModule.create_model(
        members=[later, units],
        messaging_config=dict(topic=config.topic, host="127.0.0.1", port=port),
    )


def timed(unit: str) -> xr.Dataset:
    times = np.array(
        ["1999-12-31T23:59:59", "2020-02-29T12:00:00.25", "2201-01-01"],
        dtype="M8[ms]",
    ).astype(f"M8[{unit}]")
    return xr.Dataset(
        {"when": ("time", times[::-1].copy())},
        coords={"time": ("time", times)},
        attrs={"Conventions": "CF-1.8"},
    )


def check(back: xr.Dataset, sent: xr.Dataset, unit: str) -> None:
    kept = unit if unit in ("s", "ms") else "ns"
    assert back["time"].dtype == np.dtype(f"M8[{kept}]")
    assert back["when"].dtype == np.dtype(f"M8[{kept}]")
    np.testing.assert_array_equal(back["time"].values, sent["time"].values)
    expected = sent["when"].values + np.timedelta64(1, "s")
    np.testing.assert_array_equal(back["when"].values, expected)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_time_units_through_a_real_call(make_config, broker, unit):
    config = make_config(topic=f"time-units-{unit}")
    module = module_for(config, broker.port)
    ds = timed(unit)
    kept = unit if unit in ("s", "ms") else "ns"
    with (
        listener_thread(ModuleHandler(module), config),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # CF findings of the bare grid
        # binary parts and a binary reply (the dynamic client's choice)
        with dasf_geo.connect(config.topic, config=config, progress=False) as svc:
            check(svc.later(ds), ds, unit)
            assert svc.last_reply.properties[EXT_ENCODING].startswith(
                "application/x-netcdf"
            )
            assert svc.units(ds) == [f"datetime64[{kept}]"] * 2
        # the JSON form: base64 NetCDF both ways
        with Client(config, timeout=timeout(30)) as client:
            text = client.call({"func_name": "later", "ds": encode_base64_xarray(ds)})
            check(decode_base64_xarray(text), ds, unit)
            request = {"func_name": "units", "ds": encode_base64_xarray(ds)}
            assert client.call(request) == [f"datetime64[{kept}]"] * 2
