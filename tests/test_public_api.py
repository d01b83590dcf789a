"""Every public name imports, from where a demessaging user would look for it."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import dasf_geo


@pytest.mark.parametrize("name", dasf_geo.__all__)
def test_every_public_name_imports(name):
    assert getattr(dasf_geo, name) is not None


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        dasf_geo.nope  # noqa: B018


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("dasf_geo.config", ["ModuleConfig", "FunctionConfig", "ClassConfig",
                             "PulsarConfig", "WebsocketURLConfig", "LoggingConfig",
                             "configure", "registry"]),
        ("dasf_geo.backend", ["BackendModule", "BackendFunction", "BackendClass"]),
        ("dasf_geo.serializers.xarray", ["encode_xarray"]),
        ("dasf_geo.validators.xarray", ["validate_dataset", "validate_dataarray"]),
    ],
)  # fmt: skip
def test_demessaging_import_paths(module, names):
    mod = importlib.import_module(module)
    for name in names:
        assert getattr(mod, name) is not None


def test_registry_is_the_object_whatever_the_import_order():
    code = (
        "import dasf_geo.config.registry\n"
        "from dasf_geo import registry\n"
        "print(type(registry).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "ApiRegistry"


def test_validation_problems_name_the_argument_without_boilerplate():
    from dasf_geo.exceptions import RemoteValidationError, validation_problems

    errors = [
        {"loc": ["stations", "min_elevation"], "msg": "bad", "input": "high"},
        {"loc": ["function"], "msg": "unknown function", "input": {"a": 1}},
        "not a dict",
        {"loc": [], "msg": "empty"},
    ]
    assert validation_problems(errors, ["stations"]) == [
        "min_elevation: bad (got 'high')",
        "function: unknown function",
        "request: empty",
    ]
    exc = RemoteValidationError("text", errors=errors)
    assert exc.problems() == [
        "stations.min_elevation: bad (got 'high')",
        "function: unknown function",
        "request: empty",
    ]
    assert RemoteValidationError("demessaging text only").problems() == []
