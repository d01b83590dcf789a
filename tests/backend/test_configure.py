"""``configure``: every option of FunctionConfig/ClassConfig, and misuse."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest
from pydantic import ValidationError

from dasf_geo import configure
from dasf_geo.backend import BackendClass, BackendFunction, BackendModule
from dasf_geo.config import ClassConfig, FunctionConfig
from dasf_geo.data import DataOptions
from dasf_geo.exceptions import ConfigurationError


def double(value: int) -> int:
    """A validator: doubles the value."""
    return value * 2


def must_be_even(value: int) -> int:
    """A validator: rejects odd numbers."""
    if value % 2:
        raise ValueError(f"{value} is odd")
    return value


def as_hex(value: int) -> str:
    """A serializer: an int as hex string."""
    return hex(value)


def test_configure_returns_the_object_and_stores_the_config():
    def f(a: int) -> int:
        return a

    assert configure(doc="Docs.")(f) is f
    assert isinstance(f.__pulsar_config__, FunctionConfig)  # type: ignore[attr-defined]
    assert f.__pulsar_config__.doc == "Docs."  # type: ignore[attr-defined]


def test_doc_name_and_signature():
    def f(a: int, b: int = 1) -> int:
        return a + b

    sig = inspect.signature(lambda a, b=5: None).replace(
        parameters=[
            inspect.Parameter(
                "a", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=int
            ),
            inspect.Parameter(
                "b", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=5, annotation=int
            ),
        ],
        return_annotation=int,
    )
    configure(doc="Adds.", name="add", signature=sig)(f)
    model = BackendFunction.create_model(f)
    assert model.backend_config.name == "add"
    assert model.backend_config.doc == "Adds."
    assert model.backend_config.signature == sig
    assert model.get_api_info().name == "add"
    assert model.model_validate({"func_name": "add", "a": 1})().root == 6


def test_validators_serializers_and_field_params():
    @configure(
        validators={"a": [double, must_be_even]},
        serializers={"a": as_hex},
        field_params={"a": {"ge": 0, "description": "A number."}},
    )
    def f(a: int) -> int:
        return a

    model = BackendFunction.create_model(f)
    request = model.model_validate({"func_name": "f", "a": 3})
    assert request.a == 6  # type: ignore[attr-defined]
    assert json.loads(request.model_dump_json())["a"] == "0x6"
    assert model.model_json_schema()["properties"]["a"]["description"] == "A number."
    with pytest.raises(ValidationError) as err:
        model.model_validate({"func_name": "f", "a": -1})
    assert err.value.errors(include_url=False)[0]["type"] == "greater_than_equal"


def test_validator_errors_are_structured():
    @configure(validators={"a": [must_be_even]})
    def f(a: int) -> int:
        return a

    model = BackendFunction.create_model(f)
    with pytest.raises(ValidationError) as err:
        model.model_validate({"func_name": "f", "a": 3})
    assert json.loads(err.value.json(include_url=False)) == [
        {
            "type": "value_error",
            "loc": ["a"],
            "msg": "Value error, 3 is odd",
            "input": 3,
            "ctx": {"error": "3 is odd"},
        }
    ]


def test_validators_by_import_path():
    @configure(js=json.dumps({"validators": {"a": [f"{__name__}.double"]}}))
    def f(a: int) -> int:
        return a

    model = BackendFunction.create_model(f)
    assert model.model_validate({"func_name": "f", "a": 2}).a == 4  # type: ignore[attr-defined]


def test_return_validators_serializer_returns_and_annotation():
    @configure(
        return_validators=[double],
        return_serializer=as_hex,
        returns={"ge": 0, "description": "Twice the input."},
    )
    def f(a: int) -> int:
        return a

    model = BackendFunction.create_model(f)
    result = model.model_validate({"func_name": "f", "a": 5})()
    assert result.root == 10
    assert result.model_dump_json() == '"0xa"'
    assert model.return_model.model_json_schema()["description"] == "Twice the input."

    @configure(return_annotation=float, returns={"ge": 0})
    def g(a):
        return a

    with pytest.warns(UserWarning):
        model = BackendFunction.create_model(g)
    with pytest.raises(ValidationError) as err:
        model.model_validate({"func_name": "g", "a": -1})()
    assert err.value.errors(include_url=False)[0]["type"] == "greater_than_equal"


def test_annotations_override_the_signature():
    @configure(annotations={"a": int})
    def f(a):
        return a

    with pytest.warns(UserWarning, match="no return annotation"):
        model = BackendFunction.create_model(f)
    assert model.model_validate({"func_name": "f", "a": "4"})().root == 4


def test_reporter_args_mark_the_field():
    @configure(reporter_args={"reporter": {"steps": 10}})
    def f(a: int, reporter: Any = None) -> int:
        return a

    model = BackendFunction.create_model(f)
    assert model.backend_config.reporter_args == {"reporter": {"steps": 10}}
    props = model.model_json_schema()["properties"]
    assert props["reporter"]["is_reporter"] is True


def test_data_options():
    @configure(data_options={"cf": "strict"})
    def f(a: int) -> int:
        return a

    model = BackendFunction.create_model(f, data_options=DataOptions(crs="required"))
    assert f.__pulsar_config__.data_options == DataOptions(cf="strict")  # type: ignore[attr-defined]
    assert model.backend_config.data_options == DataOptions(cf="strict")


def test_class_options_methods_init_doc_and_constructor_params():
    @configure(
        methods=["a"],
        init_doc="Build it.",
        doc="A class.",
        field_params={"x": {"gt": 0}},
        json_schema_extra={"x-kind": "demo"},
    )
    class C:
        def __init__(self, x: int):
            self.x = x

        def a(self) -> int:
            return self.x

        def b(self) -> int:
            return -self.x

    assert isinstance(C.__pulsar_config__, ClassConfig)  # type: ignore[attr-defined]
    model = BackendClass.create_model(C)
    assert list(model.backend_config.models) == ["a"]
    assert model.backend_config.init_doc == "Build it."
    assert model.backend_config.doc == "A class."
    assert model.model_json_schema()["x-kind"] == "demo"
    with pytest.raises(ValidationError) as err:
        model.model_validate(
            {"class_name": "C", "x": 0, "function": {"func_name": "a"}}
        )
    assert err.value.errors(include_url=False)[0]["loc"] == ("x",)


def test_merge_and_replace():
    @configure(field_params={"a": {"ge": 0}})
    @configure(field_params={"b": {"le": 5}}, doc="First.")
    def f(a: int, b: int) -> int:
        return a + b

    config = f.__pulsar_config__  # type: ignore[attr-defined]
    assert config.field_params == {"b": {"le": 5}, "a": {"ge": 0}}
    assert config.doc == "First."

    configure(merge=False, field_params={"a": {"ge": 1}})(f)
    assert f.__pulsar_config__.field_params == {"a": {"ge": 1}}  # type: ignore[attr-defined]
    assert f.__pulsar_config__.doc == ""  # type: ignore[attr-defined]


def test_subclass_does_not_merge_the_parent_config():
    @configure(methods=["a"])
    class Parent:
        def a(self) -> int:
            return 1

        def b(self) -> int:
            return 2

    @configure(methods=["b"])
    class Child(Parent):
        pass

    assert Child.__pulsar_config__.methods == ["b"]  # type: ignore[attr-defined]


def test_the_config_of_a_module_model_applies():
    @configure(field_params={"a": {"ge": 0}})
    def f(a: int) -> int:
        return a

    module = BackendModule.create_model(members=[f], messaging_config={"topic": "t"})
    with pytest.raises(ValidationError):
        module.process_request({"func_name": "f", "a": -1})


# --- misuse ----------------------------------------------------------------------


def _plain(a: int) -> int:
    return a


def test_unknown_option():
    with pytest.raises(ConfigurationError) as err:
        configure(field_param={"a": {"ge": 0}})(_plain)
    assert str(err.value) == (
        "@configure on function '_plain': unknown option 'field_param'; valid "
        "options are: annotations, data_options, doc, field_params, "
        "json_schema_extra, name, registry, reporter_args, return_annotation, "
        "return_serializer, return_validators, returns, serializers, signature, "
        "template, transfer, validators"
    )


def test_class_option_on_a_function():
    with pytest.raises(ConfigurationError) as err:
        configure(methods=["a"])(_plain)
    assert str(err.value) == (
        "@configure(methods=...) on function '_plain': 'methods' is an option for "
        "classes; put it on the class, or remove it"
    )


def test_function_option_on_a_class():
    with pytest.raises(ConfigurationError) as err:

        @configure(returns={"ge": 0})
        class C:
            def a(self) -> int:
                return 1

    assert str(err.value) == (
        "@configure(returns=...) on class "
        "'test_function_option_on_a_class.<locals>.C': 'returns' is an option for "
        "functions and methods; decorate the method that returns the value instead"
    )


def test_method_that_does_not_exist():
    with pytest.raises(ConfigurationError) as err:

        @configure(methods=["repeat_mesage"])
        class HelloWorld:
            def repeat_message(self, repeat: int) -> list[str]:
                return []

    assert str(err.value) == (
        "@configure(methods=['repeat_mesage', ...]) on class "
        "'test_method_that_does_not_exist.<locals>.HelloWorld': the class has no "
        "method 'repeat_mesage'; its public methods are: repeat_message"
    )


def test_method_names_must_be_strings():
    with pytest.raises(ConfigurationError) as err:

        @configure(methods=[42])
        class C:
            def a(self) -> int:
                return 1

    assert str(err.value).endswith("give method names as strings, got int 42")


def test_parameter_that_does_not_exist():
    with pytest.raises(ConfigurationError) as err:
        configure(field_params={"repeat": {"ge": 0}})(_plain)
    assert str(err.value) == (
        "@configure(field_params={'repeat': ...}) on function '_plain': there is "
        "no parameter 'repeat'; the parameters are: a"
    )
    for key in ("validators", "serializers", "annotations", "reporter_args"):
        with pytest.raises(ConfigurationError, match="there is no parameter 'zz'"):
            configure(**{key: {"zz": int}})(_plain)


def test_unknown_field_argument():
    with pytest.raises(ConfigurationError) as err:
        configure(field_params={"a": {"greater": 0}})(_plain)
    assert str(err.value) == (
        "@configure(field_params={'a': ...}) on function '_plain': unknown Field "
        "argument(s) 'greater'; valid ones are e.g. ge, gt, le, lt, min_length, "
        "max_length, pattern, description, title, examples"
    )
    with pytest.raises(ConfigurationError) as err:
        configure(returns={"minimum": 0})(_plain)
    assert str(err.value) == (
        "@configure(returns=...) on function '_plain': unknown Field argument(s) "
        "'minimum'; valid ones are e.g. ge, gt, le, lt, description"
    )


def test_field_params_value_must_be_a_dict():
    with pytest.raises(ConfigurationError) as err:
        configure(field_params={"a": 0})(_plain)
    assert str(err.value) == (
        "@configure(field_params=...) on function '_plain': the value for 'a' must "
        "be a dict of pydantic Field arguments such as {'ge': 0}, got int"
    )


def test_wrong_types_of_options():
    with pytest.raises(ConfigurationError) as err:
        configure(doc=42)(_plain)
    assert str(err.value) == (
        "@configure on function '_plain': option 'doc': Input should be a valid string"
    )
    with pytest.raises(ConfigurationError) as err:
        configure(validators={"a": ["no.such.module.func"]})(_plain)
    assert str(err.value).startswith(
        "@configure on function '_plain': option 'validators.a.0': "
    )
    with pytest.raises(ConfigurationError) as err:
        configure(validators={"a": [42]})(_plain)
    assert str(err.value) == (
        "@configure on function '_plain': option 'validators.a.0': Value error, "
        "expected a callable or the dotted import path of one, got int 42"
    )
    with pytest.raises(ConfigurationError) as err:
        configure(data_options={"cf": "sometimes"})(_plain)
    assert "option 'data_options.cf'" in str(err.value)


def test_js_and_kwargs_together():
    with pytest.raises(ConfigurationError) as err:
        configure('{"doc": "x"}', doc="y")
    assert str(err.value) == (
        "configure(): give either a JSON string or keyword arguments, not both; "
        "e.g. configure(field_params={...})"
    )


def test_js_malformed():
    with pytest.raises(ConfigurationError) as err:
        configure("{doc: x}")
    assert str(err.value).startswith("configure(): the JSON string is not valid JSON")
    with pytest.raises(ConfigurationError) as err:
        configure("[1, 2]")
    assert str(err.value) == (
        "configure(): the JSON string must hold an object of options, got list"
    )
    with pytest.raises(ConfigurationError) as err:
        configure(b'{"doc": "x"}')  # type: ignore[arg-type]
    assert str(err.value).startswith(
        "configure(): the first argument must be a JSON string, got bytes"
    )


def test_js_hostile_sizes():
    huge = json.dumps({"doc": "x" * 1_000_000})

    def f(a: int) -> int:
        return a

    configure(huge)(f)
    assert len(f.__pulsar_config__.doc) == 1_000_000  # type: ignore[attr-defined]
    deep = '{"json_schema_extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(ConfigurationError):
        configure(deep)


def test_decorating_non_callables_and_lambdas():
    with pytest.raises(ConfigurationError) as err:
        configure(doc="x")(42)
    assert str(err.value) == (
        "@configure decorates functions, methods and classes, got int 42"
    )
    with pytest.raises(ConfigurationError) as err:
        configure(doc="x")(lambda: 1)
    assert str(err.value) == (
        "@configure cannot decorate a lambda: it has no name to call it by; "
        "define it with def"
    )
    with pytest.raises(ConfigurationError) as err:
        configure(doc="x")(staticmethod(_plain))
    assert str(err.value) == (
        "@configure cannot decorate a staticmethod or classmethod; only plain "
        "functions, methods and classes can be exposed"
    )


def test_merge_must_be_a_bool():
    with pytest.raises(ConfigurationError) as err:
        configure(merge="yes", doc="x")  # type: ignore[arg-type]
    assert str(err.value) == "configure(): merge must be True or False, got 'yes'"


def test_class_constructor_validators_serializers_and_annotations():
    @configure(
        validators={"size": [double]},
        serializers={"size": as_hex},
        annotations={"label": str},
    )
    class Box:
        def __init__(self, size: int, label="box"):
            self.size = size
            self.label = label

        def describe(self) -> str:
            return f"{self.label}:{self.size}"

    model = BackendClass.create_model(Box)
    request = model.model_validate(
        {"class_name": "Box", "size": 2, "function": {"func_name": "describe"}}
    )
    assert request().root == "box:4"
    assert json.loads(request.model_dump_json())["size"] == "0x4"
    with pytest.raises(ValidationError) as err:
        model.model_validate(
            {
                "class_name": "Box",
                "size": 1,
                "label": 3,
                "function": {"func_name": "describe"},
            }
        )
    assert err.value.errors(include_url=False)[0]["loc"] == ("label",)


def test_class_name_option_is_the_rpc_name():
    @configure(name="Greeter")
    class _InternalGreeter:
        def __init__(self, message: str):
            self.message = message

        def say(self) -> str:
            return self.message

    module = BackendModule.create_model(
        members=[_InternalGreeter], messaging_config={"topic": "t"}
    )
    request = {
        "class_name": "Greeter",
        "message": "hi",
        "function": {"func_name": "say"},
    }
    assert module.process_request(request).root == "hi"
    assert module.get_api_info().classes[0].name == "Greeter"


def test_data_options_merge_module_and_member():
    @configure(data_options={"cf": "strict"})
    def f(a: int) -> int:
        return a

    model = BackendFunction.create_model(f, data_options=DataOptions(crs="required"))
    from dasf_geo.backend.utils import merge_options

    merged = merge_options(
        DataOptions(crs="required"), model.backend_config.data_options
    )
    assert merged.cf == "strict"
    assert merged.crs == "required"
    assert merge_options(None, None) is None


def test_field_params_that_pydantic_cannot_apply():
    @configure(field_params={"a": {"ge": "x"}})
    def f(a: int) -> int:
        return a

    with pytest.raises(ConfigurationError) as err:
        BackendFunction.create_model(f)
    assert str(err.value).startswith("cannot build the request model of function 'f'")
    assert "'ge' must be coercible to an integer" in str(err.value)
