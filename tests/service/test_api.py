"""The daeploy SDK's callables exist with their names and signatures."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel, ValidationError

import dasf_geo
from dasf_geo.service import Service, communication, data_types, utilities


def params(func) -> list[tuple[str, object, str]]:
    return [
        (p.name, p.default, p.kind.name)
        for p in inspect.signature(func).parameters.values()
    ]


E = inspect.Parameter.empty


def test_service_is_the_object_whatever_the_import_order():
    from dasf_geo import service

    assert isinstance(service, Service)
    code = (
        "import dasf_geo.service.utilities\n"
        "from dasf_geo import service\n"
        "from dasf_geo.service import Service\n"
        "print(isinstance(service, Service), callable(service.store))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "True True"
    assert dasf_geo.service is service


def test_service_signatures_follow_daeploy():
    from dasf_geo import service

    assert params(service.entrypoint) == [
        ("func", None, "POSITIONAL_OR_KEYWORD"),
        ("method", "POST", "POSITIONAL_OR_KEYWORD"),
        ("monitor", False, "POSITIONAL_OR_KEYWORD"),
        ("disable_http_logs", False, "POSITIONAL_OR_KEYWORD"),
        ("route_kwargs", E, "VAR_KEYWORD"),
    ]
    assert params(service.store) == [("variables", E, "VAR_KEYWORD")]
    assert params(service.call_every) == [
        ("seconds", E, "POSITIONAL_OR_KEYWORD"),
        ("wait_first", False, "POSITIONAL_OR_KEYWORD"),
    ]
    assert params(service.get_parameter) == [("parameter", E, "POSITIONAL_OR_KEYWORD")]
    assert params(service.add_parameter) == [
        ("parameter", E, "POSITIONAL_OR_KEYWORD"),
        ("value", E, "POSITIONAL_OR_KEYWORD"),
        ("expose", True, "POSITIONAL_OR_KEYWORD"),
        ("monitor", False, "POSITIONAL_OR_KEYWORD"),
        ("disable_http_logs", False, "POSITIONAL_OR_KEYWORD"),
    ]
    assert callable(service.run)


def test_communication_signatures_follow_daeploy():
    assert [s.name for s in communication.Severity] == ["INFO", "WARNING", "CRITICAL"]
    assert communication.Severity.INFO.value == 0
    assert params(communication.call_service) == [
        ("service_name", E, "POSITIONAL_OR_KEYWORD"),
        ("entrypoint_name", E, "POSITIONAL_OR_KEYWORD"),
        ("arguments", None, "POSITIONAL_OR_KEYWORD"),
        ("service_version", None, "POSITIONAL_OR_KEYWORD"),
        ("entrypoint_method", "POST", "POSITIONAL_OR_KEYWORD"),
        ("request_kwargs", E, "VAR_KEYWORD"),
    ]
    assert params(communication.notify) == [
        ("msg", E, "POSITIONAL_OR_KEYWORD"),
        ("severity", E, "POSITIONAL_OR_KEYWORD"),
        ("dashboard", True, "POSITIONAL_OR_KEYWORD"),
        ("emails", None, "POSITIONAL_OR_KEYWORD"),
        ("timer", 0, "POSITIONAL_OR_KEYWORD"),
    ]


@pytest.mark.parametrize(
    "name",
    [
        "get_authorized_domains",
        "get_daeploy_manager_hostname",
        "get_daeploy_manager_url",
        "get_db_clean_interval_seconds",
        "get_db_table_limit",
        "get_headers",
        "get_service_access_token",
        "get_service_name",
        "get_service_root_path",
        "get_service_version",
        "get_manager_url",
        "get_broker_url",
    ],
)
def test_utilities_take_no_arguments(name):
    assert params(getattr(utilities, name)) == []


def test_data_types_have_validate():
    for cls, base in [
        (data_types.ArrayInput, np.ndarray),
        (data_types.ArrayOutput, np.ndarray),
        (data_types.DataFrameInput, pd.DataFrame),
        (data_types.DataFrameOutput, pd.DataFrame),
    ]:
        assert issubclass(cls, base)
        assert params(cls.validate) == [("value", E, "POSITIONAL_OR_KEYWORD")]


# --- entrypoint ---------------------------------------------------------------


def test_entrypoint_bare_and_with_arguments():
    svc = Service("t")

    @svc.entrypoint
    def a(x: int) -> int:
        return x

    @svc.entrypoint(method="get", monitor=True, summary="B")
    def b() -> str:
        return "b"

    assert a(2) == 2  # the function itself is returned
    eps = svc.entrypoints
    assert list(eps) == ["a", "b"]
    assert (eps["b"].method, eps["b"].monitor, eps["b"].route_kwargs) == (
        "GET",
        True,
        {"summary": "B"},
    )


def test_entrypoint_refuses_a_non_callable():
    svc = Service("t")
    with pytest.raises(TypeError) as info:
        svc.entrypoint(42)
    assert str(info.value) == "an entrypoint must be a function, got int 42"


def test_entrypoint_refuses_an_invalid_method():
    svc = Service("t")
    with pytest.raises(ValueError) as info:

        @svc.entrypoint(method="FETCH")
        def f() -> None: ...

    assert str(info.value) == (
        "method must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, got "
        "'FETCH'"
    )
    with pytest.raises(ValueError, match="got 3"):
        svc.entrypoint(lambda: None, method=3)
    assert svc.entrypoints == {}


def test_entrypoint_refuses_a_lambda():
    svc = Service("t")
    with pytest.raises(TypeError, match="an entrypoint must be a named function"):
        svc.entrypoint(lambda: None)


def test_run_without_entrypoints_is_an_error(broker):
    from dasf_geo.exceptions import ConfigurationError

    svc = Service("empty")
    with pytest.raises(ConfigurationError) as info:
        svc.start(broker=broker.url)
    assert str(info.value) == (
        "service 'empty' has no entrypoints; decorate at least one function with "
        "@service.entrypoint"
    )


def test_invalid_version_is_an_error():
    from dasf_geo.exceptions import ConfigurationError

    svc = Service("v")
    with pytest.raises(ConfigurationError) as info:
        svc.start(version="1.0 beta")
    assert str(info.value) == (
        "invalid service version '1.0 beta': use letters, digits, '.', '-' and '_' "
        "(e.g. 1.2.0)"
    )


# --- parameters ------------------------------------------------------------------


def test_parameters_are_typed_by_their_first_value():
    svc = Service("p")
    svc.add_parameter("threshold", 280.0)
    svc.add_parameter("count", 3)
    svc.add_parameter("label", "x")
    svc.add_parameter("flag", False)
    svc.add_parameter("anything", None)
    assert svc.set_parameter("threshold", 275) == 275.0
    assert isinstance(svc.get_parameter("threshold"), float)
    assert svc.set_parameter("count", 4) == 4
    assert svc.set_parameter("anything", {"a": 1}) == {"a": 1}
    for name, bad, expected in [
        ("threshold", "hot", "float, got 'hot' (str)"),
        ("threshold", True, "float, got True (bool)"),
        ("count", "3", "int, got '3' (str)"),
        ("count", 3.5, "int, got 3.5 (float)"),
        ("label", 1, "str, got 1 (int)"),
        ("flag", "yes", "bool, got 'yes' (str)"),
    ]:
        with pytest.raises(ValidationError) as info:
            svc.set_parameter(name, bad)
        errors = info.value.errors(include_url=False)
        assert errors[0]["msg"] == f"parameter '{name}' expects {expected}"
        assert errors[0]["loc"] == (name,)
        assert errors[0]["type"] == "parameter_type"
    assert svc.get_parameter("threshold") == 275.0  # unchanged


def test_unknown_parameter_is_a_key_error_naming_it():
    svc = Service("p")
    svc.add_parameter("a", 1)
    svc.add_parameter("hidden", 2, expose=False)
    with pytest.raises(KeyError) as info:
        svc.get_parameter("b")
    assert str(info.value) == "unknown parameter 'b'; the parameters are: a, hidden"
    with pytest.raises(KeyError) as info:
        svc.parameters.set("hidden", 3, exposed_only=True)
    assert str(info.value) == "unknown parameter 'hidden'; the parameters are: a"
    with pytest.raises(KeyError) as info:
        svc.set_parameter("x" * 300, 1)
    assert str(info.value).startswith("unknown parameter '" + "x" * 77 + "...'")


def test_invalid_parameter_names():
    svc = Service("p")
    with pytest.raises(TypeError, match="a parameter name must be a non-empty str"):
        svc.add_parameter("", 1)
    with pytest.raises(ValueError, match="must not start with '~'"):
        svc.add_parameter("~x", 1)


# --- call_every ----------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0, -1, "1", float("inf"), True, None])
def test_call_every_needs_positive_seconds(seconds):
    svc = Service("c")
    with pytest.raises(ValueError) as info:
        svc.call_every(seconds)
    assert str(info.value) == (
        f"seconds must be a positive number, got {seconds!r:.40}"
    )


def test_call_every_needs_a_function():
    svc = Service("c")
    with pytest.raises(TypeError, match="call_every needs a function, got int"):
        svc.call_every(1)(3)


# --- utilities -------------------------------------------------------------------


def test_utilities_read_the_environment(monkeypatch):
    monkeypatch.setenv("DASF_GEO_SERVICE_NAME", "svc")
    monkeypatch.setenv("DASF_GEO_SERVICE_VERSION", "1.2.3")
    monkeypatch.setenv("DASF_GEO_GATEWAY_URL", "http://gw.example.org:8000/")
    monkeypatch.setenv("DASF_GEO_SERVICE_TOKEN", "tok")
    monkeypatch.setenv("DASF_GEO_AUTHORIZED_DOMAINS", "a.org, b.org")
    monkeypatch.setenv("DASF_GEO_STORE_LIMIT", "10000 rows")
    monkeypatch.setenv("DASF_GEO_STORE_CLEAN_INTERVAL", "30 minutes")
    assert utilities.get_service_name() == "svc"
    assert utilities.get_service_version() == "1.2.3"
    assert utilities.get_service_root_path() == "/services/svc"
    assert utilities.get_manager_url() == "http://gw.example.org:8000"
    assert utilities.get_daeploy_manager_url() == "http://gw.example.org:8000"
    assert utilities.get_daeploy_manager_hostname() == "gw.example.org"
    assert utilities.get_service_access_token() == "tok"
    assert utilities.get_headers() == {"Authorization": "Bearer tok"}
    assert utilities.get_authorized_domains() == ["a.org", "b.org", "gw.example.org"]
    assert utilities.get_db_table_limit() == (10000, "rows")
    assert utilities.get_db_clean_interval_seconds() == 1800.0
    monkeypatch.setenv("DE_BACKEND_HOST", "broker.example.org")
    assert utilities.get_broker_url() == "ws://broker.example.org:8080"
    monkeypatch.setenv("DASF_GEO_BROKER_URL", "ws://b:1")
    assert utilities.get_broker_url() == "ws://b:1"


def test_utility_defaults():
    assert utilities.get_service_version() == "0.0.0"
    assert utilities.get_db_table_limit() == (90, "days")
    assert utilities.get_db_clean_interval_seconds() == 7 * 86400.0
    assert utilities.get_headers() == {}
    assert utilities.get_broker_url() is None


@pytest.mark.parametrize("value", ["90 weeks", "-1 rows", "ten days", ""])
def test_invalid_store_limit_names_the_accepted_units(monkeypatch, value):
    monkeypatch.setenv("DASF_GEO_STORE_LIMIT", value or " ")
    with pytest.raises(ValueError) as info:
        utilities.get_db_table_limit()
    assert str(info.value) == (
        f"DASF_GEO_STORE_LIMIT: invalid limit {value or ' '!r}: expected a positive "
        "whole number and one of the units rows, days, hours, minutes, seconds "
        "(e.g. '90 rows')"
    )


def test_invalid_clean_interval_names_the_accepted_units(monkeypatch):
    monkeypatch.setenv("DASF_GEO_STORE_CLEAN_INTERVAL", "100 rows")
    with pytest.raises(ValueError) as info:
        utilities.get_db_clean_interval_seconds()
    assert str(info.value) == (
        "DASF_GEO_STORE_CLEAN_INTERVAL: invalid limit '100 rows': expected a positive "
        "whole number and one of the units days, hours, minutes, seconds (e.g. "
        "'90 days')"
    )


def test_match_limit_and_unit():
    assert utilities.match_limit_and_unit("90 days", ["days"]) == ("90", "days")
    assert utilities.match_limit_and_unit(" 5  ROWS ", ["rows"]) == ("5", "rows")
    with pytest.raises(ValueError, match="one of the units days"):
        utilities.match_limit_and_unit(None, ["days"])  # type: ignore[arg-type]


# --- data types -------------------------------------------------------------------


def test_data_types_in_a_pydantic_v2_model():
    class Model(BaseModel):
        a: data_types.ArrayInput
        b: data_types.ArrayOutput
        f: data_types.DataFrameInput
        g: data_types.DataFrameOutput

    m = Model(
        a=[[1, 2], [3, 4]],
        b=np.arange(3),
        f={"x": {"0": 1, "1": 2}},
        g=[{"x": 1}, {"x": 2}],
    )
    assert isinstance(m.a, np.ndarray) and m.a.shape == (2, 2)
    assert list(m.f["x"]) == [1, 2]
    dumped = m.model_dump(mode="json")
    assert dumped["b"] == [0, 1, 2]
    assert dumped["g"] == {"x": {"0": 1, "1": 2}}
    assert Model.model_json_schema()["properties"]["b"]["type"] == "array"
    with pytest.raises(ValidationError) as info:
        Model(a=[[1, 2], [3]], b=[1], f={}, g={})
    assert "nested lists must be rectangular" in str(info.value)


def test_data_type_orientations():
    split = {"index": [0, 1], "columns": ["a"], "data": [[1], [2]]}
    for value in (split, {"a": [1, 2]}, {"a": {"0": 1, "1": 2}}, [{"a": 1}, {"a": 2}]):
        frame = data_types.DataFrameInput.validate(value)
        assert list(frame["a"]) == [1, 2]
    assert data_types.DataFrameOutput.validate(pd.DataFrame({"a": [1]})) == {
        "a": {"0": 1}
    }
    assert data_types.ArrayOutput.validate(np.eye(2)) == [[1.0, 0.0], [0.0, 1.0]]
    with pytest.raises(ValueError, match="cannot build a DataFrame"):
        data_types.DataFrameInput.validate({"a": [1, 2], "b": [1]})


def test_the_gateway_plugs_in_as_an_entry_point(monkeypatch, caplog):
    from importlib import metadata

    from dasf_geo.service import _runtime

    started: list[str] = []

    class Started:
        def __init__(self, url: str) -> None:
            started.append(url)

        def stop(self) -> None:
            started.append("stopped")

    def broken(url: str) -> None:
        raise OSError("port taken")

    class Missing:
        name = "missing"

        def load(self):
            raise ModuleNotFoundError("No module named 'dasf_geo.gateway'")

    class Entry:
        def __init__(self, name, obj):
            self.name, self.obj = name, obj

        def load(self):
            return self.obj

    def fake(group: str):
        assert group == "dasf_geo.embedded"
        return [Entry("gateway", Started), Entry("broken", broken), Missing()]

    monkeypatch.setattr(metadata, "entry_points", fake)
    extras = _runtime.start_gateway("ws://127.0.0.1:1")
    assert started == ["ws://127.0.0.1:1"]
    assert len(extras) == 1
    assert "could not start broken beside the broker" in caplog.text


def test_broker_urls_of_both_layouts():
    from dasf_geo.service.communication import broker_options

    assert broker_options("ws://127.0.0.1:8080") == {"broker": "ws://127.0.0.1:8080"}
    assert broker_options("wss://b.example.org:443/ws/v2") == {
        "broker": "wss://b.example.org:443/ws/v2"
    }
    assert broker_options("ws://django.example.org/ws") == {
        "websocket_url": "ws://django.example.org/ws"
    }
