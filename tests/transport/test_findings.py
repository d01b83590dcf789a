"""CF/crs findings of a backend's checks reach the caller with the reply.

A real backend module answers through a real broker. In ``warn`` mode the
backend checks each argument and the result once, logs each finding once
(a log record, no Python warning) and sends the findings back in the
``dasfGeoFindings`` property; the caller raises them as
``CFConventionWarning``/``CRSWarning`` with the backend's text.
"""

from __future__ import annotations

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
    CRSWarning,
    DataWarning,
    FindingReport,
    collect_findings,
    decode_reports,
    encode_reports,
)
from dasf_geo.data import Finding as F
from dasf_geo.protocol.constants import EXT_FINDINGS
from dasf_geo.transport.backend import BackgroundListener, ModuleHandler
from dasf_geo.transport.client import close_clients
from tests.conftest import timeout
from tests.transport.conftest import listener_thread

UNITS = (
    "variable 't' attribute 'units': 'Kelvinn' is not a valid UDUNITS unit "
    '([UT_UNKNOWN] Failed to parse unit "Kelvinn") [rule units-parseable]'
)
ARG_TEXT = f"ds: 1 CF finding(s): {UNITS}"
RANGE = "values span [0.0, 95.0], outside [-90, 90]"
RESULT_TEXT = (
    f"result: 2 CF finding(s): {UNITS}; variable 'lat': {RANGE} [rule latitude-range]"
)
CRS_TEXT = (
    "result: 1 crs finding(s): global attribute 'crs': 'EPSG:99999' is not a CRS "
    "pyproj understands"
)


def grid(units: str = "K") -> xr.Dataset:
    return xr.Dataset(
        {"t": (("lat",), np.array([280.0, 281.0]), {"units": units})},
        coords={
            "lat": (
                "lat",
                [0.0, 10.0],
                {"standard_name": "latitude", "units": "degrees_north"},
            )
        },
        attrs={"Conventions": "CF-1.8"},
    )


def shift(ds: xr.Dataset) -> xr.Dataset:
    """Move the grid north (by too much)."""
    return ds.assign_coords(lat=ds.lat * 9.5)


def reproject(ds: xr.Dataset) -> xr.Dataset:
    """Claim a CRS that does not exist."""
    out = ds.copy()
    out.attrs["crs"] = "EPSG:99999"
    return out


def clean(ds: xr.Dataset) -> float:
    """Sum of t."""
    return float(ds["t"].sum())


def module_for(config: Any, port: int) -> Any:
    return BackendModule.create_model(
        members=[shift, reproject, clean],
        messaging_config=dict(topic=config.topic, host="127.0.0.1", port=port),
    )


def texts(record: Any) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, DataWarning)]


def test_dynamic_client_warns_argument_and_result_findings(make_config, broker, caplog):
    config = make_config(topic="findings-dynamic")
    module = module_for(config, broker.port)
    with (
        listener_thread(ModuleHandler(module), config),
        caplog.at_level(logging.WARNING, logger="dasf_geo.data"),
        dasf_geo.connect(config.topic, config=config, progress=False) as svc,
        warnings.catch_warnings(record=True) as record,
    ):
        warnings.simplefilter("always")
        out = svc.shift(grid("Kelvinn"))
        assert float(out.lat.max()) == 95.0
        reply = svc.last_reply
    # raised on the caller, with the backend's text, once each
    assert texts(record) == [ARG_TEXT, RESULT_TEXT]
    assert [w.category for w in record if issubclass(w.category, DataWarning)] == [
        CFConventionWarning,
        CFConventionWarning,
    ]
    found = [w.message for w in record if issubclass(w.category, DataWarning)]
    assert [f.rule for f in found[0].findings] == ["units-parseable"]
    # programmatically: the dynamic client's last reply
    reports = reply.findings()
    assert [(r.kind, r.label, r.message) for r in reports] == [
        ("CF", "ds", ARG_TEXT),
        ("CF", "result", RESULT_TEXT),
    ]
    assert reports[1].findings[1] == F("lat", None, "latitude-range", RANGE)
    # the backend checked each value once and logged each finding once
    logged = [r.getMessage() for r in caplog.records if r.name == "dasf_geo.data"]
    assert logged == [ARG_TEXT, RESULT_TEXT]


def test_crs_findings_and_clean_calls(make_config, broker):
    config = make_config(topic="findings-crs")
    module = module_for(config, broker.port)
    with (
        listener_thread(ModuleHandler(module), config),
        dasf_geo.connect(config.topic, config=config, progress=False) as svc,
    ):
        with pytest.warns(CRSWarning) as record:
            svc.reproject(grid())
        assert texts(record)[0].startswith(CRS_TEXT)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert svc.clean(grid()) == 561.0
        assert svc.last_reply.findings() == []
        assert EXT_FINDINGS not in svc.last_reply.properties


def test_stub_calls_warn_each_finding_once(make_config, broker):
    config = make_config(topic="findings-stubs")
    module = module_for(config, broker.port)
    try:
        with (
            BackgroundListener(module, handler=ModuleHandler(module)),
            warnings.catch_warnings(record=True) as record,
        ):
            warnings.simplefilter("always")
            result = module.send_request({"func_name": "shift", "ds": grid("Kelvinn")})
        assert float(result.root.lat.max()) == 95.0
    finally:
        close_clients()
    # the argument is checked (and warned) here before it is sent, the
    # result comes with the backend's findings: each text once
    assert texts(record) == [ARG_TEXT, RESULT_TEXT]


def test_dasf_geo_call_prints_findings_on_stderr(make_config, broker, capsys):
    config = make_config(topic="findings-cli")
    module = module_for(config, broker.port)
    from dasf_geo.data import encode_base64_xarray

    payload = encode_base64_xarray(grid("Kelvinn"))
    with listener_thread(ModuleHandler(module), config):
        code = tool_main(
            [
                "call",
                config.topic,
                "shift",
                f"ds={payload}",
                "--broker",
                broker.url,
                "--no-progress",
                "--timeout",
                str(timeout(30)),
            ]
        )
    out, err = capsys.readouterr()
    assert code == 0
    assert json.loads(out)  # the result, as base64 NetCDF text
    assert err.splitlines() == [f"warning: {ARG_TEXT}", f"warning: {RESULT_TEXT}"]


def test_reports_survive_hostile_properties():
    good = FindingReport("CF", "ds", "ds: 1 CF finding(s): x", [F("v", None, "r", "m")])
    assert decode_reports(encode_reports([good])) == [good]
    for hostile in (
        None,
        42,
        "not json",
        "{}",
        json.dumps([{"kind": "evil", "message": "x", "findings": []}]),
        json.dumps([{"kind": "CF", "message": 5, "findings": []}]),
        json.dumps([{"kind": "CF", "message": "x", "label": ["a"], "findings": []}]),
        "[" * 100_000,
        "x" * 5_000_000,
    ):
        assert decode_reports(hostile) == []
    # bad findings are left out, the report stays
    text = json.dumps(
        [
            {
                "kind": "crs",
                "label": None,
                "message": "m",
                "findings": [
                    {"rule": "r", "message": "ok"},
                    {"rule": 1, "message": "bad"},
                    "nope",
                    {"rule": "r", "message": "y" * 3000},
                ],
            }
        ]
    )
    (report,) = decode_reports(text)
    assert report.findings == [F(None, None, "r", "ok")]
    assert isinstance(report.warning(), CRSWarning)
    # an oversized set of reports is cut to fit a property
    many = [
        FindingReport("CF", f"a{i}", "m" * 5000, [F("v", None, "r", "m" * 1000)] * 50)
        for i in range(30)
    ]
    text = encode_reports(many)
    assert len(text) <= 64 * 1024
    assert decode_reports(text)


def test_collect_findings_checks_a_value_once_per_label():
    from dasf_geo.data import check_cf

    ds = grid("Kelvinn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with collect_findings() as reports:
            assert len(check_cf(ds, "warn", label="result")) == 1
            assert check_cf(ds, "warn", label="result") == []
            assert len(check_cf(ds, "warn", label="ds")) == 1
    assert [r.label for r in reports] == ["result", "ds"]
