"""A running service over a real broker: entrypoints, extras, calls, shadows."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import dasf_geo
from dasf_geo.exceptions import RemoteError, RemoteValidationError
from dasf_geo.service import ServiceCallError, call_service
from dasf_geo.service.data_types import (
    ArrayInput,
    ArrayOutput,
    DataFrameInput,
    DataFrameOutput,
)
from tests.conftest import timeout


def test_entrypoints_are_dasf_functions(client):
    assert client.above(value=300.0) is True
    assert client.above(value=200.0) is False
    ds = client.field(value=2.5)
    assert isinstance(ds, xr.Dataset)
    assert float(ds["tas"].max()) == 2.5
    assert client.version() == "1.0.0"  # an async entrypoint


def test_api_info_describes_the_service(client):
    info = client.api_info
    assert sorted(f["name"] for f in info["functions"]) == [
        "above",
        "fail",
        "field",
        "version",
    ]
    service = info["service"]
    assert service["name"] == "weather"
    assert service["version"] == "1.0.0"
    assert service["shadow"] is False
    assert service["entrypoints"]["field"]["method"] == "GET"
    assert service["entrypoints"]["above"]["monitor"] is True
    assert service["parameters"] == {
        "threshold": {"type": "float", "monitor": False},
        "unit": {"type": "str", "monitor": True},
    }
    assert service["reserved"] == [
        "~list_parameters",
        "~get_parameter",
        "~set_parameter",
        "~monitor",
    ]


def test_parameters_over_dasf(client, weather):
    call = client._client.call
    assert call({"func_name": "~list_parameters"}) == {"threshold": 280.0, "unit": "K"}
    assert call({"func_name": "~get_parameter", "parameter": "threshold"}) == 280.0
    assert (
        call({"func_name": "~set_parameter", "parameter": "threshold", "value": 250})
        == 250.0
    )
    assert weather.get_parameter("threshold") == 250.0  # seen by the service
    assert client.above(value=260.0) is True


def test_unknown_parameter_error_text(client):
    call = client._client.call
    for request in (
        {"func_name": "~get_parameter", "parameter": "nope"},
        {"func_name": "~set_parameter", "parameter": "secret", "value": "x"},
    ):
        with pytest.raises(RemoteError) as info:
            call(request)
        name = request["parameter"]
        assert info.value.message == (
            f"unknown parameter {name!r}; the parameters are: threshold, unit"
        )


def test_wrong_parameter_type_is_a_validation_error(client, weather):
    with pytest.raises(RemoteValidationError) as info:
        client._client.call(
            {"func_name": "~set_parameter", "parameter": "threshold", "value": "hot"}
        )
    assert info.value.message == (
        "error validating request: 1 validation error for parameter 'threshold'\n"
        "threshold\n"
        "  parameter 'threshold' expects float, got 'hot' (str) "
        "[type=parameter_type, input_value='hot', input_type=str]"
    )
    assert info.value.errors == [
        {
            "type": "parameter_type",
            "loc": ["threshold"],
            "msg": "parameter 'threshold' expects float, got 'hot' (str)",
            "input": "hot",
            "ctx": {
                "parameter": "threshold",
                "expected": "float",
                "got": "'hot' (str)",
            },
        }
    ]
    assert weather.get_parameter("threshold") == 280.0


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (
            {"func_name": "~get_parameter"},
            "error validating request: 1 validation error for GetParameter\n"
            "parameter\n  Field required",
        ),
        (
            {"func_name": "~list_parameters", "extra": 1},
            "error validating request: 1 validation error for ListParameters\n"
            "extra\n  Extra inputs are not permitted",
        ),
        (
            {"func_name": "~monitor", "start": "yesterday"},
            "error validating request: 1 validation error for Monitor\nstart\n"
            "  Value error, start must be an ISO 8601 date or time such as "
            "'2026-01-31T12:00:00Z', got 'yesterday'",
        ),
    ],
)
def test_malformed_reserved_requests(client, request_, expected):
    with pytest.raises(RemoteValidationError) as info:
        client._client.call(request_)
    assert info.value.message.startswith(expected)


def test_unknown_reserved_name_gets_the_usual_error(client):
    with pytest.raises(RemoteError) as info:
        client._client.call({"func_name": "~shutdown"})
    assert "Unknown function or class" in info.value.message
    assert client.above(value=1.0) is False  # still serving


def test_parameters_from_connect(client, weather):
    params = client.parameters
    assert dict(params) == {"threshold": 280.0, "unit": "K"}
    params["threshold"] = 300.0
    assert params["threshold"] == 300.0
    assert weather.get_parameter("threshold") == 300.0
    with pytest.raises(KeyError) as info:
        params["nope"]
    assert info.value.args[0] == (
        "unknown parameter 'nope'; the parameters are: threshold, unit"
    )
    with pytest.raises(RemoteValidationError):
        params["threshold"] = "hot"
    with pytest.raises(TypeError, match="cannot be removed"):
        del params["threshold"]


def test_monitored_calls_and_parameters_read_back(client, weather):
    client.above(value=300.0)
    client.field(value=3.0)
    with pytest.raises(RemoteError):
        client.fail()  # not monitored
    client.parameters["unit"] = "degC"
    records = client._client.call({"func_name": "~monitor", "variables": None})
    by_name = {r["variable"]: r for r in records}
    assert set(by_name) == {"above", "field", "unit"}
    above = by_name["above"]["value"]
    assert above["arguments"] == {"value": 300.0}
    assert above["result"] is True
    assert above["seconds"] >= 0
    field = by_name["field"]["value"]
    assert field["result"]["type"] == "xarray.Dataset"
    assert field["result"]["dims"] == {"lat": 2, "lon": 3}
    assert by_name["unit"]["value"] == "degC"
    assert by_name["unit"]["timestamp"].endswith("+00:00")
    only = client._client.call(
        {"func_name": "~monitor", "variables": "unit", "start": "2000-01-01"}
    )
    assert [r["variable"] for r in only] == ["unit"]
    none = client._client.call(
        {"func_name": "~monitor", "variables": ["unit"], "end": "2000-01-01T00:00Z"}
    )
    assert none == []
    text = client._client.call({"func_name": "~monitor", "format": "csv"})
    lines = text.splitlines()
    assert lines[0] == "variable,value,timestamp"
    assert lines[-1].startswith("unit,degC,")
    raw = client._client.call({"func_name": "~monitor", "format": "sqlite"})
    assert raw["filename"] == "weather_1.0.0.sqlite"
    import base64

    assert base64.b64decode(raw["data"]).startswith(b"SQLite format 3\x00")


def test_a_broken_store_does_not_stop_the_service(broker, make_service, tmp_path):
    path = tmp_path / "corrupt.sqlite"
    path.write_bytes(b"garbage" * 1000)
    svc = make_service("broken", "1.0.0")
    svc.configure_store(path=path)

    @svc.entrypoint(monitor=True)
    def echo(text: str) -> str:
        return text

    svc.start(broker=broker.url)
    with dasf_geo.connect("broken", broker.url, timeout=timeout(20)) as c:
        assert c.echo(text="still here") == "still here"
        with pytest.raises(RemoteError) as info:
            c._client.call({"func_name": "~monitor"})
    assert info.value.message == (
        "error reading the monitoring store: cannot open the monitoring store "
        f"{path}: file is not a database"
    )
    with pytest.raises(Exception, match="file is not a database"):
        svc.store(x=1)


# --- call_service -------------------------------------------------------------


def test_call_service_between_two_services(broker, weather, make_service):
    caller = make_service("caller", "1.0.0")
    got: dict = {}

    @caller.entrypoint
    def mean_of_field(value: float) -> float:
        ds = call_service("weather", "field", {"value": value}, entrypoint_method="GET")
        got["ds"] = ds
        return float(ds["tas"].mean())

    caller.start(broker=broker.url)
    with dasf_geo.connect("caller", broker.url, timeout=timeout(30)) as c:
        assert c.mean_of_field(value=4.0) == 4.0
    assert isinstance(got["ds"], xr.Dataset)  # a Dataset came back as a Dataset


def test_call_service_from_outside_a_service(broker, weather, monkeypatch):
    monkeypatch.setenv("DASF_GEO_BROKER_URL", broker.url)
    assert call_service("weather", "above", {"value": 999.0}) is True
    assert call_service("weather", "version", service_version="1.0.0") == "1.0.0"


def test_call_service_errors(broker, weather, monkeypatch):
    monkeypatch.setenv("DASF_GEO_BROKER_URL", broker.url)
    t = timeout(1)
    started = time.monotonic()
    with pytest.raises(ServiceCallError) as info:
        call_service("nobody", "hello", timeout=t)
    assert time.monotonic() - started < t + timeout(10)
    assert str(info.value) == (
        f"service 'nobody' did not answer within {t:g} s: no service listens on "
        f"topic 'nobody' at {broker.url}"
    )
    with pytest.raises(ServiceCallError) as info:
        call_service("weather", "nope")
    assert str(info.value) == (
        "service 'weather' has no entrypoint 'nope'; it offers: above, field, "
        "version, fail"
    )
    with pytest.raises(ServiceCallError) as info:
        call_service("weather", "field", entrypoint_method="POST")
    assert str(info.value) == (
        "entrypoint 'field' of service 'weather' takes GET requests, not POST"
    )
    with pytest.raises(ServiceCallError) as info:
        call_service("weather", "fail")
    assert str(info.value) == (
        "service 'weather' failed to run 'fail': error executing request: "
        "RuntimeError: the sensor is offline"
    )
    with pytest.raises(ServiceCallError) as info:
        call_service("weather", "above", {"value": "warm"})
    assert str(info.value).startswith(
        "service 'weather' failed to run 'above': error validating request:"
    )
    assert info.value.errors[0]["loc"] == ["above", "value"]
    with pytest.raises(ValueError) as verr:
        call_service("weather", "above", entrypoint_method="FETCH")
    assert str(verr.value) == (
        "entrypoint_method must be one of GET, POST, PUT, PATCH, DELETE, HEAD, "
        "OPTIONS, got 'FETCH'"
    )
    with pytest.raises(TypeError) as terr:
        call_service("weather", "above", verify=False)
    assert str(terr.value) == (
        "call_service() got unexpected keyword argument(s) verify; it takes "
        "timeout= and headers="
    )


def test_call_service_without_a_broker():
    with pytest.raises(ServiceCallError) as info:
        call_service("weather", "above")
    assert str(info.value) == (
        "cannot call service 'weather': no broker is configured (run this code in a "
        "service started with service.run(), or set DASF_GEO_BROKER_URL)"
    )


# --- versions and shadows ---------------------------------------------------------


def test_a_shadow_gets_every_request_and_callers_only_the_main_reply(
    broker, make_service
):
    def build(version: str, factor: float):
        svc = make_service("model", version)

        @svc.entrypoint
        def predict(x: float) -> dict:
            return {"version": version, "y": x * factor}

        return svc

    main = build("1.0.0", 2.0)
    shadow = build("1.1.0", 3.0)
    main.start(broker=broker.url)
    shadow.start(broker=broker.url, shadow=True)
    with dasf_geo.connect("model", broker.url, timeout=timeout(20)) as c:
        assert c.api_info["service"]["version"] == "1.0.0"
        replies = [c.predict(x=float(i)) for i in range(5)]
    assert replies == [{"version": "1.0.0", "y": 2.0 * i} for i in range(5)]

    deadline = time.monotonic() + timeout(20)
    while len(shadow.monitor(["predict"])) < 5:
        assert time.monotonic() < deadline, shadow.monitor()
        time.sleep(0.05)
    recorded = shadow.monitor(["predict"])
    assert [r["value"]["arguments"] for r in recorded] == [
        {"x": float(i)} for i in range(5)
    ]
    assert [r["value"]["result"] for r in recorded] == [
        {"version": "1.1.0", "y": 3.0 * i} for i in range(5)
    ]
    assert all(r["value"]["seconds"] >= 0 for r in recorded)
    assert main.monitor() == []  # the main version monitors nothing here

    # one version, directly
    with dasf_geo.connect("model_1-1-0", broker.url, timeout=timeout(20)) as c:
        assert c.predict(x=1.0) == {"version": "1.1.0", "y": 3.0}
        assert c.api_info["service"]["shadow"] is True


# --- notifications ----------------------------------------------------------------


class TopicReader:
    """Consumes the notifications topic from a thread."""

    def __init__(self, broker_url: str) -> None:
        from websockets.sync.client import connect

        url = (
            f"{broker_url}/ws/v2/consumer/non-persistent/public/default/"
            "dasf-geo-notifications/test-reader"
        )
        self._opened = connect(url)
        self.ws = self._opened.__enter__()
        self.messages: list[dict] = []
        self.arrived = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        import base64

        try:
            for frame in self.ws:
                msg = json.loads(frame)
                self.ws.send(json.dumps({"messageId": msg["messageId"]}))
                body = json.loads(base64.b64decode(msg["payload"]))
                with self.arrived:
                    self.messages.append({"properties": msg["properties"], **body})
                    self.arrived.notify_all()
        except Exception:
            pass

    def wait_for(self, n: int) -> list[dict]:
        with self.arrived:
            assert self.arrived.wait_for(
                lambda: len(self.messages) >= n, timeout(20)
            ), self.messages
            return list(self.messages)

    def close(self) -> None:
        self._opened.__exit__(None, None, None)


def test_notify_publishes_on_the_topic(broker, make_service, smtp):
    from dasf_geo.service import Severity, notify

    reader = TopicReader(broker.url)
    svc = make_service("alarm", "2.0.0")

    @svc.entrypoint
    def alarm(level: int) -> str:
        notify(
            f"level {level}", Severity.CRITICAL, emails=["ops@example.org"], timer=60
        )
        return "sent"

    svc.start(broker=broker.url)
    try:
        with dasf_geo.connect("alarm", broker.url, timeout=timeout(20)) as c:
            assert c.alarm(level=3) == "sent"
            assert c.alarm(level=3) == "sent"  # suppressed by the timer
            assert c.alarm(level=4) == "sent"
        messages = reader.wait_for(2)
        time.sleep(0.2)
        assert [m["msg"] for m in reader.messages] == ["level 3", "level 4"]
    finally:
        reader.close()
    first = messages[0]
    assert first["properties"] == {"messageType": "notification"}
    assert first["service"] == "alarm"
    assert first["version"] == "2.0.0"
    assert first["severity"] == "CRITICAL"
    assert first["emails"] == ["ops@example.org"]
    assert first["dashboard"] is True
    assert first["timestamp"].endswith("+00:00")
    # and the mails, received by a real SMTP server
    assert smtp.received.wait(timeout(10))
    deadline = time.monotonic() + timeout(10)
    while len(smtp.messages) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    envelope = smtp.messages[0]
    assert envelope.mail_from == "monitor@dasf-geo.invalid"
    assert envelope.rcpt_tos == ["ops@example.org"]
    text = envelope.content.decode()
    assert "Subject: [CRITICAL] alarm 2.0.0: level 3" in text
    assert "level 3" in text


def test_a_refusing_smtp_server_is_logged_not_raised(smtp, logs):
    from dasf_geo.service import Severity, notify

    notify("disk full", Severity.WARNING, emails=["nobody@refused.invalid"])
    errors = logs.messages(40)
    assert any(
        m.startswith(
            f"could not mail the notification 'disk full' to nobody@refused.invalid "
            f"via 127.0.0.1:{smtp.port}: "
        )
        and "550" in m
        for m in errors
    ), errors
    assert smtp.messages == []


def test_an_unreachable_smtp_server_is_logged(monkeypatch, logs):
    from dasf_geo.service import Severity, notify
    from tests.conftest import free_port

    port = free_port()
    monkeypatch.setenv("DASF_GEO_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("DASF_GEO_SMTP_PORT", str(port))
    notify("x", Severity.INFO, emails=["a@example.org"])
    assert any(
        m.startswith(
            f"could not mail the notification 'x' to a@example.org via 127.0.0.1:"
            f"{port}: "
        )
        for m in logs.messages(40)
    )


def test_notify_without_broker_or_smtp_is_logged(logs):
    from dasf_geo.service import Severity, notify

    notify("hello", Severity.INFO, emails=["a@example.org"])
    assert logs.messages(30) == [
        "notification not published (no broker configured): hello",
        "notification 'hello' not mailed to a@example.org: no SMTP server "
        "configured (set DASF_GEO_SMTP_HOST)",
    ]


def test_notify_refuses_wrong_arguments():
    from dasf_geo.service import Severity, notify

    with pytest.raises(TypeError) as info:
        notify("x", "CRITICAL")  # type: ignore[arg-type]
    assert str(info.value) == (
        "severity must be a Severity (Severity.INFO, .WARNING or .CRITICAL), got "
        "'CRITICAL'"
    )
    with pytest.raises(TypeError, match="msg must be a str, got int"):
        notify(3, Severity.INFO)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="emails must be a list of addresses"):
        notify("x", Severity.INFO, emails="a@b.org")  # type: ignore[arg-type]


def test_retention_removes_old_rows_while_running(
    broker, make_service, monkeypatch, store_url
):
    if store_url is not None:
        monkeypatch.setenv("DASF_GEO_STORE_URL", store_url)
    monkeypatch.setenv("DASF_GEO_STORE_LIMIT", "3 rows")
    monkeypatch.setenv("DASF_GEO_STORE_CLEAN_INTERVAL", "1 seconds")
    svc = make_service("trim")

    @svc.entrypoint
    def ping() -> str:
        return "pong"

    for i in range(10):
        svc.store(level=i)
    svc.start(broker=broker.url)  # cleans at once, then every second
    deadline = time.monotonic() + timeout(20)
    while len(svc.monitor()) > 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [r["value"] for r in svc.monitor()] == [7.0, 8.0, 9.0]
    for i in range(10, 15):
        svc.store(level=i)
    deadline = time.monotonic() + timeout(20)
    while len(svc.monitor()) > 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [r["value"] for r in svc.monitor()] == [12.0, 13.0, 14.0]
    assert svc.monitoring.url.startswith("postgresql" if store_url else "sqlite")


def test_hostile_reserved_requests_are_refused_and_serving_goes_on(client):
    call = client._client.call
    with pytest.raises(RemoteValidationError) as info:
        call({"func_name": "~monitor", "variables": [f"v{i}" for i in range(5000)]})
    assert info.value.errors[0]["type"] == "too_long"
    assert info.value.errors[0]["loc"] == ["variables"]
    with pytest.raises(RemoteValidationError) as info:
        call({"func_name": "~get_parameter", "parameter": "p" * 10_000})
    assert info.value.errors[0]["type"] == "string_too_long"
    with pytest.raises(RemoteValidationError) as info:
        call({"func_name": "~get_parameter", "parameter": ["threshold"]})
    assert info.value.errors[0]["msg"] == "Input should be a valid string"
    with pytest.raises(RemoteValidationError) as info:
        call({"func_name": "~monitor", "limit": -1})
    assert info.value.errors[0]["loc"] == ["limit"]
    nested: object = 1
    for _ in range(200):
        nested = [nested]
    with pytest.raises(RemoteValidationError) as info:
        call({"func_name": "~set_parameter", "parameter": "threshold", "value": nested})
    assert info.value.errors[0]["msg"].startswith("parameter 'threshold' expects float")
    assert call({"func_name": "~get_parameter", "parameter": "threshold"}) == 280.0
    assert client.above(value=300.0) is True


def test_daeploy_data_types_as_entrypoint_arguments(broker, make_service):
    svc = make_service("tables")

    @svc.entrypoint
    def double(df: DataFrameInput) -> DataFrameOutput:
        return df * 2

    @svc.entrypoint
    def total(arr: ArrayInput) -> float:
        return float(np.asarray(arr).sum())

    @svc.entrypoint
    def plain(arr: np.ndarray, df: pd.DataFrame) -> ArrayOutput:
        return np.asarray(arr) + len(df)

    svc.start(broker=broker.url)
    with dasf_geo.connect("tables", broker.url, timeout=timeout(20)) as c:
        raw = c._client.call
        # daeploy's JSON shapes in, daeploy's shape out
        assert raw({"func_name": "double", "df": {"a": {"0": 1, "1": 2}}}) == {
            "a": {"0": 2, "1": 4}
        }
        assert raw({"func_name": "double", "df": [{"a": 1}, {"a": 2}]}) == {
            "a": {"0": 2, "1": 4}
        }
        assert raw({"func_name": "total", "arr": [[1, 2], [3, 4]]}) == 10.0
        # and dasf_geo's own forms, from the dynamic client
        out = c.double(df=pd.DataFrame({"a": [1.5]}))
        assert isinstance(out, pd.DataFrame) and out["a"].tolist() == [3.0]
        assert c.total(arr=np.ones((2, 2))) == 4.0
        assert c.plain(arr=np.arange(3), df=pd.DataFrame({"a": [1, 2]})).tolist() == [
            2,
            3,
            4,
        ]
        with pytest.raises(RemoteValidationError) as info:
            raw({"func_name": "total", "arr": [[1, 2], [3]]})
        assert "nested lists must be rectangular" in info.value.message


def test_a_generated_client_calls_the_entrypoints(client, weather, tmp_path):
    import importlib.util
    import sys

    code = weather.generate()
    assert (
        'def above(value: float) -> bool:\n    """Is ``value`` above the threshold?"""'
        in code
    )
    path = tmp_path / "weather_client.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location("weather_client", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["weather_client"] = module
    try:
        spec.loader.exec_module(module)
        assert module.above(value=300.0) is True
        assert module.version() == "1.0.0"
    finally:
        sys.modules.pop("weather_client", None)


def test_store_file_deleted_while_the_service_runs(
    broker, make_service, tmp_path, logs
):
    path = tmp_path / "gone.sqlite"
    svc = make_service("forgetful")
    svc.configure_store(path=path)

    @svc.entrypoint(monitor=True)
    def echo(text: str) -> str:
        return text

    svc.start(broker=broker.url)
    with dasf_geo.connect("forgetful", broker.url, timeout=timeout(20)) as c:
        assert c.echo(text="one") == "one"
        path.unlink()
        assert c.echo(text="two") == "two"  # still serving
        rows = c._client.call({"func_name": "~monitor"})
    assert [r["value"]["result"] for r in rows] == ["two"]
    assert path.exists()
    assert f"the monitoring store {path} was deleted; starting a new one" in (
        logs.messages()
    )
