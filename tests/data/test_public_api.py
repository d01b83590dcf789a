"""Every public name of the data layer imports and is documented."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "dasf_geo.data",
    "dasf_geo.serializers.xarray",
    "dasf_geo.serializers.pandas",
    "dasf_geo.serializers.numpy",
    "dasf_geo.validators.xarray",
    "dasf_geo.validators.pandas",
    "dasf_geo.validators.numpy",
]


@pytest.mark.parametrize("module", MODULES)
def test_all_names_import_and_have_docstrings(module):
    mod = importlib.import_module(module)
    assert mod.__doc__
    for name in mod.__all__:
        obj = getattr(mod, name)
        if callable(obj) or isinstance(obj, type):
            assert obj.__doc__, f"{module}.{name} has no docstring"
