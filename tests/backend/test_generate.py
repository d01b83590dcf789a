"""Client stubs: generated code imports, and builds what the backend validates."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import dasf_geo.service.client as service_client
from dasf_geo import BackendModule
from dasf_geo.exceptions import ConfigurationError
from tests.backend.conftest import (
    HELLO_CLASS,
    HELLO_CONFIGURED,
    HELLO_GREET,
    HELLO_NAME,
    HELLO_WORLD,
)

TOPIC = {"messaging_config": {"topic": "hello-world-topic"}}
RUFF = Path(sys.executable).with_name("ruff")

FORMATS = [
    pytest.param({}, id="formatted"),
    pytest.param({"use_formatters": False}, id="no-formatters"),
    pytest.param({"use_black": False, "use_isort": False}, id="autoflake-only"),
    pytest.param({"use_autoflake": False}, id="no-autoflake"),
]


@pytest.fixture
def wire(monkeypatch):
    """Route stub calls through the backend model in process.

    The request a stub sends is serialized to JSON, validated by the *backend*
    model and run there; its JSON reply is validated by the stub's return
    model, exactly as the transport does.
    """
    sent: list[dict] = []
    backends: dict[str, type[BackendModule]] = {}

    def fake_send(module_cls, request, **kwargs):
        payload = request.model_dump_json()
        sent.append(json.loads(payload))
        backend = backends[module_cls.backend_config.messaging_config.topic]
        result = backend.model_validate_json(payload)()
        reply = bytes(result.__pydantic_serializer__.to_json(result))
        return request.root.return_model.model_validate_json(reply)

    monkeypatch.setattr(service_client, "send_request", fake_send)
    return sent, backends


@pytest.fixture
def load_client(tmp_path, monkeypatch):
    """Write generated code to a module file and import it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def load(code: str, name: str):
        (tmp_path / f"{name}.py").write_text(code, "utf-8")
        importlib.invalidate_caches()
        names.append(name)
        return importlib.import_module(name)

    yield load
    for name in names:
        sys.modules.pop(name, None)


def assert_clean(code: str) -> None:
    """The code parses and has no unused imports or undefined names."""
    ast.parse(code)
    proc = subprocess.run(
        [
            str(RUFF),
            "check",
            "--isolated",
            "--select",
            "E,W,F",
            "--ignore",
            "E501",
            "--stdin-filename",
            "c.py",
        ],
        input=code,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("options", FORMATS)
def test_hello_world_stub(make_module, load_client, wire, options, request):
    sent, backends = wire
    mod = make_module(HELLO_WORLD)
    backend = BackendModule.create_model(mod.__name__, **TOPIC)
    backends["hello-world-topic"] = backend
    code = backend.generate(**options)
    assert_clean(code)
    client = load_client(
        code, f"hw_client_{request.node.callspec.id.replace('-', '_')}"
    )
    assert client.__all__ == ["hello_world"]
    assert client.hello_world() == "HelloWorld"
    assert sent == [{"func_name": "hello_world"}]
    assert client.BackendModule.backend_config.messaging_config.topic == (
        "hello-world-topic"
    )
    assert inspect.signature(client.hello_world) == inspect.signature(mod.hello_world)


HELLO_TYPED_LIST = """
from typing import Dict, List

__all__ = ["names"]


def names(counts: Dict[str, int]) -> List[str]:
    return sorted(counts)
"""


@pytest.mark.parametrize("options", FORMATS)
def test_type_registered_by_another_module_brings_its_imports(
    make_module, load_client, wire, options, request
):
    """Two stubs in one process: the global registry holds GreetResponse (from
    the first module) when the second is generated, and the second client
    inlines it; its imports (BaseModel, List, datetime) must come along
    although the second module imports none of them (or, for List, imports it
    in another statement)."""
    sent, backends = wire
    greet = make_module(HELLO_GREET)
    first = BackendModule.create_model(greet.__name__, **TOPIC)
    assert_clean(first.generate(**options))
    suffix = request.node.callspec.id.replace("-", "_")
    for source, call, expected in [
        (HELLO_WORLD, ("hello_world",), "HelloWorld"),
        (HELLO_TYPED_LIST, ("names", {"b": 1, "a": 2}), ["a", "b"]),
    ]:
        mod = make_module(source)
        backend = BackendModule.create_model(mod.__name__, **TOPIC)
        backends["hello-world-topic"] = backend
        code = backend.generate(**options)
        assert "class GreetResponse(BaseModel):" in code
        assert_clean(code)
        client = load_client(code, f"{call[0]}_second_client_{suffix}")
        assert getattr(client, call[0])(*call[1:]) == expected
        assert set(client.GreetResponse.model_fields) == {
            "message",
            "greetings",
            "greeting_time",
        }
    assert [s["func_name"] for s in sent] == ["hello_world", "names"]


RESULT_TYPE = """
from pydantic import BaseModel
from dasf_geo import registry

__all__ = ["get"]


@registry.register_type
class Result(BaseModel):
    {field}: {type}


def get() -> Result:
    return Result({field}={value!r})
"""


@pytest.mark.parametrize("options", FORMATS)
def test_same_named_types_of_two_modules_each_client_gets_its_own(
    make_module, load_client, wire, options, request
):
    """Two modules register different types named ``Result`` in the global
    registry: each client inlines one ``Result``, its own module's."""
    _sent, backends = wire
    suffix = request.node.callspec.id.replace("-", "_")
    mods = {
        "a": make_module(RESULT_TYPE.format(field="count", type="int", value=1)),
        "b": make_module(RESULT_TYPE.format(field="label", type="str", value="x")),
        "c": make_module(HELLO_WORLD),
    }
    models = {
        topic: BackendModule.create_model(
            mod.__name__, messaging_config={"topic": f"result-{topic}"}
        )
        for topic, mod in mods.items()
    }
    for topic, backend in models.items():
        backends[f"result-{topic}"] = backend
    for topic, expected in [("a", {"count": 1}), ("b", {"label": "x"})]:
        code = models[topic].generate(**options)
        assert_clean(code)
        assert code.count("class Result(BaseModel):") == 1
        client = load_client(code, f"result_client_{topic}_{suffix}")
        result = client.get()
        assert isinstance(result, client.Result)
        assert result.model_dump() == expected
    # a module without a Result of its own: the one registered last
    code = models["c"].generate(**options)
    assert_clean(code)
    assert code.count("class Result(BaseModel):") == 1
    assert "label: str" in code


def test_formatting_options_change_the_layout_not_the_code(make_module):
    mod = make_module(HELLO_GREET)
    backend = BackendModule.create_model(mod.__name__, **TOPIC)
    formatted = backend.generate()
    plain = backend.generate(use_formatters=False)
    assert formatted != plain
    assert ast.dump(ast.parse(formatted)) != ""
    assert max(map(len, formatted.splitlines())) <= 79
    assert formatted.endswith("\n") and not formatted.endswith("\n\n")


@pytest.mark.parametrize(
    "source", [HELLO_NAME, HELLO_CLASS, HELLO_CONFIGURED, HELLO_GREET]
)
@pytest.mark.parametrize("options", FORMATS[:2])
def test_seed_listings_round_trip(
    make_module, load_client, wire, source, options, request
):
    sent, backends = wire
    mod = make_module(source)
    backend = BackendModule.create_model(mod.__name__, **TOPIC)
    backends["hello-world-topic"] = backend
    code = backend.generate(**options)
    assert_clean(code)
    client = load_client(code, f"seed_client_{abs(hash(request.node.name))}")
    if hasattr(mod, "hello_world"):
        assert client.hello_world("Peter") == "Hello World, Peter"
        assert sent[-1] == {"func_name": "hello_world", "name": "Peter"}
        return
    hello = client.HelloWorld("hi")
    assert hello.repeat_message(2) == ["hi", "hi"]
    assert sent[-1] == {
        "class_name": "HelloWorld",
        "message": "hi",
        "function": {"func_name": "repeat_message", "repeat": 2},
    }
    # the request the stub builds validates with the backend model
    assert backend.model_validate(sent[-1]).model_dump() == sent[-1]
    assert not hasattr(client.HelloWorld, "unexposed_method") or (source is HELLO_CLASS)
    if hasattr(mod, "GreetResponse"):
        greeting = hello.greet(2, "hey")
        assert isinstance(greeting, client.GreetResponse)
        assert greeting.greetings == ["hey", "hey"]
        assert inspect.getsource(client.GreetResponse).startswith(
            "class GreetResponse(BaseModel):"
        )
    if source in (HELLO_CONFIGURED, HELLO_GREET):
        # constraints are repeated in the stub: bad input fails before sending
        from pydantic import ValidationError

        before = len(sent)
        with pytest.raises(ValidationError):
            hello.repeat_message(-1)
        assert len(sent) == before


def test_stub_keeps_docstrings_defaults_and_imports(make_module, load_client, wire):
    sent, backends = wire
    mod = make_module(
        r"""
        '''Geo tools.

        Small helpers.
        '''
        import datetime
        import enum
        from typing import Optional, Literal

        import numpy as np

        __all__ = ["shift", "Mode", "stamp"]


        class Mode(enum.Enum):
            UP = "up"
            DOWN = "down"


        def shift(
            values: list[float],
            by: float = 1.5,
            mode: Literal["add", "sub"] = "add",
            label: Optional[str] = None,
            *,
            scale: float = 1.0,
        ) -> list[float]:
            '''Shift values.

            Quotes \"\"\" and a backslash \\ survive.

            Args:
                values: the values
                by: the offset
            '''
            sign = 1 if mode == "add" else -1
            return [(v + sign * by) * scale for v in values]


        def stamp(when: datetime.date) -> str:
            return when.isoformat()
        """
    )
    backend = BackendModule.create_model(
        mod.__name__, members=["shift", "stamp"], **TOPIC
    )
    backends["hello-world-topic"] = backend
    code = backend.generate()
    assert_clean(code)
    assert code.startswith('"""Geo tools.\n\nSmall helpers.\n"""')
    assert "import numpy" not in code  # unused in the client
    client = load_client(code, "geo_client")
    assert inspect.signature(client.shift) == inspect.signature(mod.shift)
    assert inspect.getdoc(client.shift) == inspect.getdoc(mod.shift)
    assert client.shift([1.0], scale=2.0) == [5.0]
    assert sent[-1] == {
        "func_name": "shift",
        "values": [1.0],
        "by": 1.5,
        "mode": "add",
        "label": None,
        "scale": 2.0,
    }
    import datetime

    assert client.stamp(datetime.date(2024, 1, 2)) == "2024-01-02"
    assert sent[-1] == {"func_name": "stamp", "when": "2024-01-02"}


def test_registry_imports_and_hard_code_appear(make_module, load_client, wire):
    _sent, backends = wire
    mod = make_module(
        """
        from dasf_geo import registry

        registry.register_import("math", "m")
        registry.hard_code("DEFAULT_UNIT = 'm'")

        __all__ = ["unit"]

        def unit() -> str:
            return "m"
        """
    )
    backend = BackendModule.create_model(mod.__name__, **TOPIC)
    backends["hello-world-topic"] = backend
    code = backend.generate(use_autoflake=False)
    assert "DEFAULT_UNIT = 'm'" in code or 'DEFAULT_UNIT = "m"' in code
    client = load_client(code, "unit_client")
    assert client.DEFAULT_UNIT == "m"
    assert client.unit() == "m"


def test_unregistered_backend_type_is_reported(make_module):
    mod = make_module(
        """
        from pydantic import BaseModel

        __all__ = ["f"]

        class Result(BaseModel):
            value: int

        def f() -> Result:
            return Result(value=1)
        """
    )
    backend = BackendModule.create_model(mod.__name__, **TOPIC)
    assert backend.process_request({"func_name": "f"}).root.value == 1
    with pytest.raises(ConfigurationError) as err:
        backend.generate()
    assert str(err.value) == (
        "the generated client needs 'Result' of the backend module; decorate it "
        "with @registry.register_type so that its code is copied into the client"
    )


def test_unwritable_default_is_reported():
    class Thing:
        def __repr__(self) -> str:
            return "<thing>"

    def f(a: int = Thing()) -> int:  # type: ignore[assignment]
        return 1

    from pydantic.json_schema import PydanticJsonSchemaWarning

    with pytest.warns(PydanticJsonSchemaWarning):
        backend = BackendModule.create_model(members=[f], **TOPIC)
    with pytest.raises(ConfigurationError) as err:
        backend.generate()
    assert str(err.value) == (
        "cannot write the default value <thing> into the generated client; use a "
        "literal default (number, str, None, tuple...) and build the object inside "
        "the function"
    )


@pytest.mark.parametrize("bad", [0, -1, 10_001, "79", 79.0, True, None])
def test_generate_rejects_bad_line_length(make_module, bad):
    mod = make_module(HELLO_WORLD)
    backend = BackendModule.create_model(mod.__name__, **TOPIC)
    with pytest.raises(ConfigurationError) as err:
        backend.generate(line_length=bad)
    assert str(err.value) == (
        f"line_length must be an int between 10 and 10000, got {bad!r}"
    )


def test_stub_messaging_config_and_environment(
    make_module, load_client, wire, monkeypatch
):
    mod = make_module(HELLO_WORLD)
    backend = BackendModule.create_model(
        mod.__name__,
        messaging_config={
            "topic": "hello-world-topic",
            "websocket_url": "ws://127.0.0.1:9/ws",
            "header": {"authorization": "Token secret"},
        },
    )
    code = backend.generate()
    assert "secret" not in code
    assert "ws://127.0.0.1:9/ws" in code
    client = load_client(code, "env_client_a")
    config = client.BackendModule.backend_config.messaging_config
    assert type(config).__name__ == "WebsocketURLConfig"
    assert config.topic == "hello-world-topic"
    monkeypatch.setenv("DE_BACKEND_TOPIC", "other-topic")
    client_b = load_client(code, "env_client_b")
    assert client_b.BackendModule.backend_config.messaging_config.topic == (
        "other-topic"
    )


def test_generate_from_the_command_line(tmp_path):
    """``python my_module.py generate > client.py`` as in the seed."""
    backend_file = tmp_path / "hello_world_backend.py"
    backend_file.write_text(HELLO_GREET, "utf-8")
    proc = subprocess.run(
        [sys.executable, str(backend_file), "generate"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert_clean(proc.stdout)
    assert "class GreetResponse(BaseModel):" in proc.stdout
    assert "def greet(self, repeat: int, greet_message: str) -> GreetResponse:" in (
        proc.stdout
    )


def test_xarray_stub_round_trip(make_module, load_client, wire):
    """Data-layer types travel through a generated client."""
    xr = pytest.importorskip("xarray")
    np = pytest.importorskip("numpy")
    sent, backends = wire
    mod = make_module(
        """
        import numpy as np
        import xarray as xr

        from dasf_geo import configure

        __all__ = ["get_data", "mean"]


        @configure(data_options={"cf": "off"})
        def get_data(n: int = 3) -> xr.Dataset:
            '''A small Dataset.'''
            return xr.Dataset(
                {"t": ("x", np.arange(n, dtype="f4"))}, attrs={"crs": "EPSG:4326"}
            )


        @configure(data_options={"cf": "off"})
        def mean(ds: xr.Dataset, var: str = "t") -> float:
            return float(ds[var].mean())
        """
    )
    backend = BackendModule.create_model(mod.__name__, **TOPIC)
    backends["hello-world-topic"] = backend
    code = backend.generate()
    assert_clean(code)
    assert "def get_data(n: int = 3) -> xarray.Dataset:" in code
    assert "@configure(data_options={" in code
    client = load_client(code, "xr_client")
    ds = client.get_data(4)
    assert isinstance(ds, xr.Dataset)
    np.testing.assert_array_equal(ds["t"].values, np.arange(4, dtype="f4"))
    assert client.mean(ds) == 1.5
    assert sent[-1]["func_name"] == "mean"


def test_messaging_config_from_environment_kind(monkeypatch):
    from dasf_geo.config.backend import messaging_config_from
    from dasf_geo.config.messaging import PulsarConfig, WebsocketURLConfig

    embedded = {"topic": "t", "host": "broker.example.org", "port": 8081}
    config = messaging_config_from(embedded)
    assert isinstance(config, PulsarConfig)
    assert (config.host, config.port, config.topic) == ("broker.example.org", 8081, "t")
    monkeypatch.setenv("DE_BACKEND_WEBSOCKET_URL", "ws://127.0.0.1:9/ws")
    config = messaging_config_from(embedded)
    assert isinstance(config, WebsocketURLConfig)
    assert config.websocket_url == "ws://127.0.0.1:9/ws"
    assert config.topic == "t"
    monkeypatch.setenv("DE_BACKEND_PORT", "not a port")
    monkeypatch.delenv("DE_BACKEND_WEBSOCKET_URL")
    with pytest.raises(ConfigurationError, match="port"):
        messaging_config_from(embedded)


def test_shell_falls_back_to_the_standard_console(make_module, monkeypatch):
    import code as code_module

    mod = make_module(HELLO_WORLD)
    backend = BackendModule.create_model(mod.__name__, **TOPIC)
    seen = {}
    monkeypatch.setitem(sys.modules, "IPython", None)  # not installed
    monkeypatch.setattr(
        code_module, "interact", lambda banner, local: seen.update(local)
    )
    backend.shell()
    assert seen == {"Model": backend}
