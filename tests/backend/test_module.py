"""Classes and modules: the seed's listings, process_request, API info, errors."""

from __future__ import annotations

import io
import json

import pytest
from pydantic import ValidationError

from dasf_geo import BackendClass, BackendFunction, BackendModule, configure
from dasf_geo.backend import ClassAPIModel, ModuleAPIModel
from dasf_geo.config import ModuleConfig
from dasf_geo.exceptions import ConfigurationError
from tests.backend.conftest import (
    HELLO_CLASS,
    HELLO_CONFIGURED,
    HELLO_GREET,
    HELLO_NAME,
    HELLO_WORLD,
)

TOPIC = {"messaging_config": {"topic": "hello-world-topic"}}


def test_hello_world_function(make_module):
    mod = make_module(HELLO_WORLD)
    model = BackendModule.create_model(mod.__name__, **TOPIC)
    result = model.process_request({"func_name": "hello_world"})
    assert result.root == "HelloWorld"
    assert result.model_dump_json() == '"HelloWorld"'
    schema = model.model_json_schema()
    assert schema["title"] == "hello-world-topic"
    assert schema["$ref"] == "#/$defs/FuncHelloWorld"
    assert schema["$defs"]["FuncHelloWorld"]["required"] == ["func_name"]


def test_hello_world_with_name_and_bad_input(make_module):
    mod = make_module(HELLO_NAME)
    model = BackendModule.create_model(mod.__name__, **TOPIC)
    assert model.process_request(
        '{"func_name": "hello_world", "name": "Peter"}'
    ).root == ("Hello World, Peter")
    with pytest.raises(ValidationError) as err:
        model.process_request({"func_name": "hello_world"})
    assert err.value.errors(include_url=False) == [
        {
            "type": "missing",
            "loc": ("name",),
            "msg": "Field required",
            "input": {"func_name": "hello_world"},
        }
    ]


def test_hello_world_class(make_module):
    mod = make_module(HELLO_CLASS)
    model = BackendModule.create_model(mod.__name__, **TOPIC)
    request = {
        "class_name": "HelloWorld",
        "message": "hi",
        "function": {"func_name": "repeat_message", "repeat": 2},
    }
    assert model.process_request(request).root == ["hi", "hi"]
    schema = model.model_json_schema()
    cls_schema = schema["$defs"]["ClassHelloWorld"]
    assert list(cls_schema["properties"]) == ["message", "class_name", "function"]
    assert "MethClassHelloWorldRepeatMessage" in schema["$defs"]


def test_configured_class_exposes_only_listed_methods(make_module):
    mod = make_module(HELLO_CONFIGURED)
    model = BackendModule.create_model(mod.__name__, **TOPIC)
    (cls_model,) = model.backend_config.models
    assert issubclass(cls_model, BackendClass)
    assert list(cls_model.backend_config.models) == ["repeat_message"]
    with pytest.raises(ValidationError) as err:
        model.process_request(
            {
                "class_name": "HelloWorld",
                "message": "hi",
                "function": {"func_name": "repeat_message", "repeat": -1},
            }
        )
    assert err.value.errors(include_url=False) == [
        {
            "type": "greater_than_equal",
            "loc": ("function", "repeat"),
            "msg": "Input should be greater than or equal to 0",
            "input": -1,
            "ctx": {"ge": 0},
        }
    ]
    with pytest.raises(ValidationError) as err:
        model.process_request(
            {
                "class_name": "HelloWorld",
                "message": "hi",
                "function": {"func_name": "unexposed_method"},
            }
        )
    assert err.value.errors(include_url=False) == [
        {
            "type": "literal_error",
            "loc": ("function", "func_name"),
            "msg": "Input should be 'repeat_message'",
            "input": "unexposed_method",
            "ctx": {"expected": "'repeat_message'"},
        },
        {
            "type": "missing",
            "loc": ("function", "repeat"),
            "msg": "Field required",
            "input": {"func_name": "unexposed_method"},
        },
    ]


def test_greet_with_registered_type(make_module):
    mod = make_module(HELLO_GREET)
    model = BackendModule.create_model(mod.__name__, **TOPIC)
    result = model.process_request(
        {
            "class_name": "HelloWorld",
            "message": "hi",
            "function": {"func_name": "greet", "repeat": 2, "greet_message": "hey"},
        }
    )
    assert isinstance(result.root, mod.GreetResponse)
    data = json.loads(result.model_dump_json())
    assert data["message"] == "hi"
    assert data["greetings"] == ["hey", "hey"]
    assert "greeting_time" in data
    info = model.get_api_info()
    (cls_info,) = info.classes
    assert [m.name for m in cls_info.methods] == ["repeat_message", "greet"]
    assert cls_info.methods[1].return_schema["$ref"] == "#/$defs/GreetResponse"
    assert cls_info.methods[1].return_schema["title"] == "MethClassHelloWorldGreet"


def test_unknown_member_and_method(make_module):
    mod = make_module(HELLO_GREET)

    def hello_world(name: str) -> str:
        return name

    model = BackendModule.create_model(
        members=[mod.HelloWorld, hello_world], **TOPIC, class_name="M"
    )
    for request in ({"func_name": "nope"}, {"class_name": "Nope"}, {}, [1], 5):
        with pytest.raises(ValidationError) as err:
            model.process_request(request)
        assert err.value.errors(include_url=False) == [
            {
                "type": "unknown_member",
                "loc": (),
                "msg": "Unknown function or class: the request needs 'func_name' or "
                "'class_name' set to one of 'HelloWorld', 'hello_world'",
                "input": request,
                "ctx": {"expected": "'HelloWorld', 'hello_world'"},
            }
        ]
    with pytest.raises(ValidationError) as err:
        model.process_request(
            {"class_name": "HelloWorld", "message": "m", "function": {"func_name": "x"}}
        )
    assert err.value.errors(include_url=False) == [
        {
            "type": "unknown_member",
            "loc": ("HelloWorld", "function"),
            "msg": "Unknown method: 'func_name' must be one of 'repeat_message', "
            "'greet' (the exposed methods of 'HelloWorld')",
            "input": {"func_name": "x"},
            "ctx": {"expected": "'repeat_message', 'greet'"},
        }
    ]
    with pytest.raises(ValidationError) as err:
        model.process_request({"func_name": "hello_world", "name": 1, "extra": 2})
    assert err.value.errors(include_url=False) == [
        {
            "type": "string_type",
            "loc": ("hello_world", "name"),
            "msg": "Input should be a valid string",
            "input": 1,
        },
        {
            "type": "extra_forbidden",
            "loc": ("hello_world", "extra"),
            "msg": "Extra inputs are not permitted",
            "input": 2,
        },
    ]
    with pytest.raises(ValidationError) as err:
        model.process_request(
            {
                "class_name": "HelloWorld",
                "message": "m",
                "function": {"func_name": "greet", "repeat": -1, "greet_message": "x"},
            }
        )
    assert err.value.errors(include_url=False) == [
        {
            "type": "greater_than_equal",
            "loc": ("HelloWorld", "function", "greet", "repeat"),
            "msg": "Input should be greater than or equal to 0",
            "input": -1,
            "ctx": {"ge": 0},
        }
    ]


def test_process_request_sources(make_module, tmp_path):
    mod = make_module(HELLO_NAME)
    model = BackendModule.create_model(mod.__name__, **TOPIC)
    text = '{"func_name": "hello_world", "name": "P"}'
    path = tmp_path / "request.json"
    path.write_text(text)
    with path.open() as f:
        assert model.process_request(f).root == "Hello World, P"
    with path.open("rb") as f:
        assert model.process_request(f).root == "Hello World, P"
    assert model.process_request(io.StringIO(text)).root == "Hello World, P"
    assert model.process_request(text.encode()).root == "Hello World, P"
    instance = model.model_validate_json(text)
    assert model.process_request(instance).root == "Hello World, P"
    with pytest.raises(ValidationError) as err:
        model.process_request("{not json")
    assert err.value.errors(include_url=False)[0]["type"] == "json_invalid"
    with pytest.raises(ValidationError) as err:
        model.process_request(b"\xff\xfe")
    assert err.value.errors(include_url=False)[0]["type"] == "json_invalid"


def test_transport_contract(make_module):
    """What the transport does per request works (see ModuleHandler)."""
    mod = make_module(HELLO_GREET)
    model_cls = BackendModule.create_model(mod.__name__, **TOPIC)
    payload = json.dumps(
        {
            "class_name": "HelloWorld",
            "message": "hi",
            "function": {"func_name": "repeat_message", "repeat": 1},
        }
    ).encode()
    model = model_cls.model_validate_json(payload)
    result = model()
    reply = bytes(result.__pydantic_serializer__.to_json(result))
    assert reply == b'["hi"]'
    assert model.root.return_model.model_validate_json(reply).root == ["hi"]
    json.dumps(model_cls.model_json_schema())
    api = json.loads(model_cls.get_api_info().model_dump_json())
    assert set(api) == {"classes", "functions", "rpc_schema"}
    assert model_cls.backend_config.messaging_config.topic == "hello-world-topic"
    assert model_cls.backend_config.debug is False


def test_api_info_models(make_module):
    mod = make_module(HELLO_GREET)

    def add(a: int, b: int = 1) -> int:
        return a + b

    model = BackendModule.create_model(members=[mod.HelloWorld, add], **TOPIC)
    info = model.get_api_info()
    assert isinstance(info, ModuleAPIModel)
    assert [f.name for f in info.functions] == ["add"]
    assert isinstance(info.classes[0], ClassAPIModel)
    ctor = info.classes[0].rpc_schema
    assert ctor["title"] == "ClassHelloWorld"
    assert list(ctor["properties"]) == ["message", "class_name"]
    assert info.rpc_schema == model.model_json_schema()
    assert info.functions[0].rpc_schema["properties"]["b"]["default"] == 1


def test_members_sources(make_module):
    mod = make_module(HELLO_GREET)
    by_name = BackendModule.create_model(mod.__name__, members=["HelloWorld"], **TOPIC)
    by_obj = BackendModule.create_model(members=[mod.HelloWorld], **TOPIC)
    by_model = BackendModule.create_model(
        members=[BackendClass.create_model(mod.HelloWorld)], **TOPIC
    )
    for model in (by_name, by_obj, by_model):
        assert [m.backend_config.name for m in model.backend_config.models] == [
            "HelloWorld"
        ]
        assert model.backend_config.members == [mod.HelloWorld]

    def f(a: int) -> int:
        return a

    model = BackendModule.create_model(
        members=[BackendFunction.create_model(f)], config=ModuleConfig(**TOPIC)
    )
    assert model.process_request({"func_name": "f", "a": 1}).root == 1
    assert model.__name__ == "hello-world-topic"


def test_module_without_all_exposes_its_own_public_objects(make_module):
    mod = make_module(
        """
        from typing import List

        def public(a: int) -> int:
            return a

        def _private(a: int) -> int:
            return a
        """
    )
    model = BackendModule.create_model(mod.__name__, **TOPIC)
    assert [m.backend_config.name for m in model.backend_config.models] == ["public"]


def test_module_backend_config_variable(make_module):
    mod = make_module(
        """
        from dasf_geo.config import ModuleConfig

        __all__ = ["f"]

        def f(a: int) -> int:
            '''Identity.'''
            return a

        backend_config = ModuleConfig(messaging_config={"topic": "from-module"})
        """
    )
    model = BackendModule.create_model(mod.__name__)
    assert model.backend_config.messaging_config.topic == "from-module"


def test_module_data_options_reach_members():
    @configure(data_options={"cf": "strict"})
    def f(a: int) -> int:
        return a

    def g(a: int) -> int:
        return a

    model = BackendModule.create_model(
        members=[f, g], data_options={"crs": "required"}, **TOPIC
    )
    assert model.backend_config.data_options.crs == "required"


def test_create_model_misuse(make_module):
    with pytest.raises(ConfigurationError) as err:
        BackendModule.create_model()
    assert str(err.value) == (
        "BackendModule.create_model needs a module_name or a list of members, e.g. "
        "create_model(members=[hello_world], messaging_config={'topic': 'hello'})"
    )
    with pytest.raises(ConfigurationError) as err:
        BackendModule.create_model("no_such_module_xyz", **TOPIC)
    assert str(err.value) == (
        "cannot import the backend module 'no_such_module_xyz': No module named "
        "'no_such_module_xyz'"
    )
    with pytest.raises(ConfigurationError) as err:
        BackendModule.create_model(
            members=[len], config=ModuleConfig(**TOPIC), debug=True
        )
    assert str(err.value) == (
        "give either config or configuration keywords (debug), not both"
    )
    mod = make_module('__all__ = ["missing"]\n')
    with pytest.raises(ConfigurationError) as err:
        BackendModule.create_model(mod.__name__, **TOPIC)
    assert str(err.value) == (
        f"module {mod.__name__!r} has no member 'missing'; fix __all__ or the "
        "members list"
    )
    empty = make_module("X = 1\n")
    with pytest.raises(ConfigurationError) as err:
        BackendModule.create_model(empty.__name__, **TOPIC)
    assert str(err.value) == (
        f"found no members for the backend module {empty.__name__!r}; list them in "
        "__all__ or pass members=[...]"
    )
    with pytest.raises(ConfigurationError) as err:
        BackendModule.create_model(members=[42], **TOPIC)
    assert str(err.value) == (
        "cannot expose 42: members must be functions, classes, their names, or "
        "BackendFunction/BackendClass models"
    )
    with pytest.raises(ConfigurationError) as err:
        BackendModule.create_model(members=["f"], **TOPIC)
    assert str(err.value) == (
        "member 'f' is a name, but no module_name was given to look it up in; pass "
        "the object itself"
    )

    def f(a: int) -> int:
        return a

    with pytest.raises(ConfigurationError) as err:
        BackendModule.create_model(members=[f, f], **TOPIC)
    assert str(err.value) == (
        "two members of the backend module are named 'f'; each function and class "
        "needs a unique name"
    )
    with pytest.raises(ConfigurationError) as err:
        BackendModule.create_model(members=[f], messaging_config={})
    assert str(err.value).startswith(
        "invalid module configuration: messaging_config: invalid PulsarConfig: no "
        "topic given"
    )
    with pytest.raises(ConfigurationError) as err:
        BackendModule.create_model(members=[f], messaging_config={"topic": "t"}, x=1)
    assert str(err.value).startswith(
        "invalid module configuration: x: unknown option; valid options are: "
        "data_options, debug, doc,"
    )


def test_class_misuse():
    class NoMethods:
        def __init__(self, a: int):
            self.a = a

    with pytest.raises(ConfigurationError) as err:
        BackendClass.create_model(NoMethods)
    assert str(err.value) == (
        "class 'NoMethods' has no public methods to expose; add one, or list "
        "methods with @configure(methods=[...])"
    )

    class C:
        def a(self) -> int:
            return 1

    with pytest.raises(ConfigurationError) as err:
        BackendClass.create_model(C, methods=["b"])
    assert str(err.value) == (
        "class 'C' has no method 'b' to expose; its public methods are: a"
    )
    with pytest.raises(ConfigurationError) as err:
        BackendClass.create_model(len)  # type: ignore[arg-type]
    assert str(err.value).startswith("BackendClass.create_model expects a class")

    class Star:
        def __init__(self, *parts: int):
            self.parts = parts

        def total(self) -> int:
            return sum(self.parts)

    with pytest.raises(ConfigurationError, match=r"\*parts is not supported"):
        BackendClass.create_model(Star)


def test_class_with_default_constructor_and_method_models():
    class Counter:
        """Counts things.

        Args:
            start: where to start
        """

        def __init__(self, start: int = 0):
            """Make a counter."""
            self.start = start

        def up(self, by: int = 1) -> int:
            """Count up."""
            return self.start + by

        def down(self, by: int = 1) -> int:
            return self.start - by

    model = BackendClass.create_model(Counter, methods=["up", Counter.down])
    assert model.backend_config.init_doc == "Make a counter."
    assert model.backend_config.doc.startswith("Counts things.")
    assert model.model_json_schema()["properties"]["start"]["description"] == (
        "where to start"
    )
    request = model.model_validate(
        {"class_name": "Counter", "function": {"func_name": "down", "by": 3}}
    )
    assert request().root == -3
    assert request.return_model is model.backend_config.models["down"].return_model


def test_send_request_and_delegations_use_the_transport(make_module, monkeypatch):
    import dasf_geo.service.client as tc
    import dasf_geo.service.handler as tb

    mod = make_module(HELLO_NAME)
    model_cls = BackendModule.create_model(mod.__name__, **TOPIC)
    calls = []

    def fake_send(module_cls, request, **kwargs):
        calls.append((module_cls, request, kwargs))
        return request.root.return_model.model_validate("reply")

    monkeypatch.setattr(tc, "send_request", fake_send)
    monkeypatch.setattr(tb, "listen", lambda cls: ("listen", cls))
    monkeypatch.setattr(tb, "test_connect", lambda cls: ("test_connect", cls))
    request = model_cls.model_validate({"func_name": "hello_world", "name": "x"})
    assert request.compute().root == "reply"
    assert model_cls.send_request('{"func_name": "hello_world", "name": "y"}').root == (
        "reply"
    )
    assert calls[0][0] is model_cls
    assert calls[1][1].root.name == "y"
    assert model_cls.listen() == ("listen", model_cls)
    assert model_cls.test_connect() == ("test_connect", model_cls)


def test_process_request_oversized_wrong_typed_and_hostile(make_module, monkeypatch):
    import dasf_geo.backend.module as module_mod

    mod = make_module(HELLO_NAME)
    model = BackendModule.create_model(mod.__name__, **TOPIC)
    monkeypatch.setattr(module_mod, "MAX_REQUEST_BYTES", 64)
    big = json.dumps({"func_name": "hello_world", "name": "x" * 100})
    with pytest.raises(ConfigurationError) as err:
        model.process_request(big)
    assert str(err.value) == (
        f"the request has {len(big)} bytes, more than the limit of 64"
    )
    with pytest.raises(ConfigurationError) as err:
        model.process_request(io.BytesIO(big.encode()))
    assert str(err.value) == "the request file is larger than the limit of 64 bytes"
    monkeypatch.setattr(module_mod, "MAX_REQUEST_BYTES", 1 << 30)

    # a long but valid argument is fine
    name = "x" * 1_000_000
    assert model.process_request({"func_name": "hello_world", "name": name}).root == (
        "Hello World, " + name
    )
    # wrong-typed requests
    for request in (42, None, 1.5, ["func_name"]):
        with pytest.raises(ValidationError) as verr:
            model.process_request(request)
        assert verr.value.errors(include_url=False)[0]["loc"] == ()
    # deeply nested JSON does not crash the process
    deep = '{"func_name": "hello_world", "name": ' + "[" * 10_000 + "]" * 10_000 + "}"
    with pytest.raises(ValidationError) as verr:
        model.process_request(deep)
    assert verr.value.errors(include_url=False)[0]["type"] == "json_invalid"
    # a name that is not a str
    with pytest.raises(ValidationError) as verr:
        model.process_request({"func_name": ["hello_world"], "name": "x"})
    assert verr.value.errors(include_url=False)[0]["type"] == "literal_error"


def test_static_and_class_methods():
    class Tools:
        def run(self, a: int) -> int:
            return a

        @staticmethod
        def helper(a: int) -> int:
            return a

        @classmethod
        def build(cls) -> Tools:
            return cls()

    model = BackendClass.create_model(Tools)
    assert list(model.backend_config.models) == ["run"]
    for name, kind in (("helper", "staticmethod"), ("build", "classmethod")):
        with pytest.raises(ConfigurationError) as err:
            BackendClass.create_model(Tools, methods=[name])
        assert str(err.value) == (
            f"class 'Tools': {name!r} is a {kind}; only instance methods can be "
            "exposed as methods (the request creates an instance first); expose it "
            "as a module-level function instead"
        )


def test_producer_and_consumer_urls_pick_the_url_config(monkeypatch):
    from dasf_geo.config import WebsocketURLConfig
    from dasf_geo.config.backend import ModuleConfig, messaging_config_from

    urls = {
        "topic": "t",
        "producer_url": "ws://broker.example/ws/produce",
        "consumer_url": "ws://broker.example/ws/consume",
    }
    config = ModuleConfig(messaging_config=dict(urls))
    assert isinstance(config.messaging_config, WebsocketURLConfig)
    assert config.messaging_config.get_topic_url("t") == (
        "ws://broker.example/ws/produce/t"
    )
    for key in list(__import__("os").environ):
        if key.upper().startswith("DE_BACKEND_"):
            monkeypatch.delenv(key)
    embedded = messaging_config_from(dict(urls))
    assert isinstance(embedded, WebsocketURLConfig)
    assert embedded.get_topic_url("t", "sub") == "ws://broker.example/ws/consume/t/sub"
