"""Functions as request models: fields, docstrings, return models, calls."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from dasf_geo import configure
from dasf_geo.backend import BackendFunction, FunctionAPIModel, ReturnModel
from dasf_geo.config import FunctionConfig
from dasf_geo.exceptions import ConfigurationError


def numpy_style(a: int, b: float = 2.0) -> float:
    """Multiply two numbers.

    A longer description.

    Parameters
    ----------
    a : int
        The first factor.
    b : float
        The second factor.

    Returns
    -------
    float
        The product.
    """
    return a * b


def google_style(a: int, b: float = 2.0) -> float:
    """Multiply two numbers.

    Args:
        a: The first factor.
        b: The second factor.

    Returns:
        The product.
    """
    return a * b


def rest_style(a: int, b: float = 2.0) -> float:
    """Multiply two numbers.

    :param a: The first factor.
    :param b: The second factor.
    :returns: The product.
    """
    return a * b


@pytest.mark.parametrize("func", [numpy_style, google_style, rest_style])
def test_docstring_styles_give_descriptions(func):
    model = BackendFunction.create_model(func)
    schema = model.model_json_schema()
    assert schema["title"] == "Func" + "".join(
        w.capitalize() for w in func.__name__.split("_")
    )
    assert schema["description"].startswith("Multiply two numbers.")
    props = schema["properties"]
    assert props["a"]["description"] == "The first factor."
    assert props["b"]["description"] == "The second factor."
    assert props["b"]["default"] == 2.0
    assert schema["required"] == ["func_name", "a"]
    assert props["func_name"] == {
        "const": func.__name__,
        "description": f"The name of the function. Must be {func.__name__!r}",
        "title": "Func Name",
        "type": "string",
    }
    ret = model.return_model.model_json_schema()
    assert ret["description"] == "The product."
    assert ret["type"] == "number"


def test_call_runs_the_function_and_returns_the_return_model():
    model = BackendFunction.create_model(google_style)
    request = model.model_validate({"func_name": "google_style", "a": 3})
    result = request()
    assert isinstance(result, ReturnModel)
    assert isinstance(result, model.return_model)
    assert result.root == 6.0
    assert result.model_dump_json() == "6.0"
    assert issubclass(model.return_model, ReturnModel)
    assert model.return_model.__name__ == "FuncGoogleStyle"


def test_seed_hello_world_with_name():
    def hello_world(name: str) -> str:
        return "Hello World, " + name

    model = BackendFunction.create_model(hello_world)
    request = model.model_validate_json('{"func_name": "hello_world", "name": "Peter"}')
    assert request().root == hello_world("Peter")
    assert request().model_dump_json() == '"Hello World, Peter"'


def test_positional_only_and_keyword_only_parameters():
    def f(a: int, /, b: int, *, c: int = 1) -> list[int]:
        return [a, b, c]

    model = BackendFunction.create_model(f)
    assert model.model_validate({"func_name": "f", "a": 1, "b": 2})().root == [1, 2, 1]


def test_class_name_and_kwargs_are_passed_to_pydantic():
    model = BackendFunction.create_model(google_style, class_name="Mult")
    assert model.__name__ == "Mult"
    assert model.model_json_schema()["title"] == "Mult"


def test_explicit_config_overrides_configure():
    @configure(field_params={"a": {"ge": 10}})
    def f(a: int) -> int:
        return a

    model = BackendFunction.create_model(f, config=FunctionConfig())
    assert model.model_validate({"func_name": "f", "a": 1})().root == 1


def test_unannotated_parameter_is_any_with_a_warning():
    def untyped(x, y: int = 1):
        return x

    with pytest.warns(UserWarning) as record:
        model = BackendFunction.create_model(untyped)
    messages = [str(w.message) for w in record]
    assert (
        "function 'untyped': parameter 'x' has no type annotation, so it is "
        "accepted as Any without validation; annotate it to validate the argument"
    ) in messages
    assert (
        "function 'untyped' has no return annotation, so its result is sent as "
        "Any without validation; annotate the return type"
    ) in messages
    assert model.model_validate({"func_name": "untyped", "x": [1, "a"]})().root == [
        1,
        "a",
    ]


def test_lambda_is_rejected():
    with pytest.raises(ConfigurationError) as err:
        BackendFunction.create_model(lambda x: x)
    assert str(err.value) == (
        "cannot expose the lambda function: a remote function needs a name; "
        "define it with def"
    )


def test_var_args_are_rejected():
    def f(*values: float) -> float:
        return sum(values)

    with pytest.raises(ConfigurationError) as err:
        BackendFunction.create_model(f)
    assert str(err.value) == (
        "cannot expose function 'f': *values is not supported because a request "
        "names every argument; replace it with a list parameter, e.g. "
        "values: list[float]"
    )


def test_var_kwargs_are_rejected():
    def f(**options: Any) -> None:
        return None

    with pytest.raises(ConfigurationError) as err:
        BackendFunction.create_model(f)
    assert str(err.value) == (
        "cannot expose function 'f': **options is not supported because the "
        "request schema lists every argument; replace it with a dict parameter, "
        "e.g. options: dict[str, Any]"
    )


def test_reserved_parameter_name_is_rejected():
    def f(func_name: str) -> str:
        return func_name

    with pytest.raises(ConfigurationError) as err:
        BackendFunction.create_model(f)
    assert str(err.value) == (
        "cannot expose function 'f': the parameter name 'func_name' is used by "
        "the request itself; rename the parameter"
    )


def test_not_a_function_is_rejected():
    with pytest.raises(ConfigurationError) as err:
        BackendFunction.create_model(42)  # type: ignore[arg-type]
    assert str(err.value) == (
        "BackendFunction.create_model expects a function, got int 42; use "
        "BackendClass.create_model for classes"
    )


class Opaque:
    """A class pydantic has no schema for."""


def test_type_without_schema_is_rejected_at_creation():
    def f(x: Opaque) -> int:
        return 1

    with pytest.raises(ConfigurationError) as err:
        BackendFunction.create_model(f)
    assert str(err.value).startswith("cannot build the request model of function 'f'")
    assert str(err.value).endswith(
        "Use types the data layer supports (JSON types, pydantic models, numpy, "
        "pandas, xarray), or give validators and serializers with @configure"
    )


def test_string_annotations_are_resolved():
    namespace: dict[str, Any] = {}
    exec(
        "from __future__ import annotations\n"
        "def f(a: int, b: list[str]) -> dict[str, int]:\n"
        "    return {s: a for s in b}\n",
        namespace,
    )
    model = BackendFunction.create_model(namespace["f"])
    result = model.model_validate({"func_name": "f", "a": "3", "b": ["x"]})()
    assert result.root == {"x": 3}


def test_unresolvable_annotation_is_reported():
    namespace: dict[str, Any] = {}
    exec(
        "from __future__ import annotations\ndef f(a: Missing) -> int:\n    return 1\n",
        namespace,
    )
    with pytest.raises(ConfigurationError) as err:
        BackendFunction.create_model(namespace["f"])
    assert str(err.value) == (
        "cannot resolve an annotation of function 'f': name 'Missing' is not "
        "defined; import the type at module level so that it can be evaluated"
    )


def test_bad_arguments_give_structured_errors():
    model = BackendFunction.create_model(google_style)
    with pytest.raises(ValidationError) as err:
        model.model_validate({"func_name": "google_style", "a": "x", "c": 1})
    assert err.value.errors(include_url=False) == [
        {
            "type": "int_parsing",
            "loc": ("a",),
            "msg": "Input should be a valid integer, unable to parse string as an "
            "integer",
            "input": "x",
        },
        {
            "type": "extra_forbidden",
            "loc": ("c",),
            "msg": "Extra inputs are not permitted",
            "input": 1,
        },
    ]
    with pytest.raises(ValidationError) as err:
        model.model_validate({"func_name": "other"})
    assert err.value.errors(include_url=False) == [
        {
            "type": "literal_error",
            "loc": ("func_name",),
            "msg": "Input should be 'google_style'",
            "input": "other",
            "ctx": {"expected": "'google_style'"},
        },
        {
            "type": "missing",
            "loc": ("a",),
            "msg": "Field required",
            "input": {"func_name": "other"},
        },
    ]


def test_get_api_info():
    model = BackendFunction.create_model(numpy_style)
    info = model.get_api_info()
    assert isinstance(info, FunctionAPIModel)
    assert info.name == "numpy_style"
    assert info.rpc_schema == model.model_json_schema()
    assert info.return_schema == model.return_model.model_json_schema()


def test_json_schema_extra_is_merged():
    @configure(json_schema_extra={"examples": [{"a": 1}], "x-unit": "m"})
    def f(a: int) -> int:
        return a

    schema = BackendFunction.create_model(f).model_json_schema()
    assert schema["examples"] == [{"a": 1}]
    assert schema["x-unit"] == "m"


def test_method_exceptions_propagate():
    def boom(a: int) -> int:
        raise RuntimeError(f"boom {a}")

    model = BackendFunction.create_model(boom)
    with pytest.raises(RuntimeError, match="boom 3"):
        model.model_validate({"func_name": "boom", "a": 3})()


def test_wrong_return_type_fails_validation():
    def wrong() -> int:
        return "not a number"  # type: ignore[return-value]

    model = BackendFunction.create_model(wrong)
    with pytest.raises(ValidationError):
        model.model_validate({"func_name": "wrong"})()


def test_none_return_annotation():
    def nothing(a: int) -> None:
        return None

    model = BackendFunction.create_model(nothing)
    assert model.model_validate(
        {"func_name": "nothing", "a": 1}
    )().model_dump_json() == ("null")


@pytest.mark.parametrize("name", ["json", "copy", "schema", "dict", "validate"])
def test_parameters_named_like_basemodel_methods(name):
    namespace: dict[str, Any] = {}
    exec(f"def f({name}: int) -> int:\n    return {name}\n", namespace)
    model = BackendFunction.create_model(namespace["f"])
    request = model.model_validate({"func_name": "f", name: 4})
    assert request().root == 4
    assert request.model_dump_json() == f'{{"func_name":"f","{name}":4}}'


def test_parameters_in_pydantic_namespace_are_rejected():
    def f(model_config: int) -> int:
        return model_config

    with pytest.raises(ConfigurationError) as err:
        BackendFunction.create_model(f)
    assert str(err.value) == (
        "cannot expose function 'f': the parameter 'model_config' starts with "
        "'model_', which pydantic reserves for its own methods; rename it"
    )
