"""Every public name of the backend, config and service-layer modules imports."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "dasf_geo.backend",
    "dasf_geo.backend.function",
    "dasf_geo.backend.class_",
    "dasf_geo.backend.module",
    "dasf_geo.backend.utils",
    "dasf_geo.backend.base",
    "dasf_geo.backend.introspection",
    "dasf_geo.backend.stubgen",
    "dasf_geo.config.api",
    "dasf_geo.config.backend",
    "dasf_geo.config.registry",
    "dasf_geo.templates",
    "dasf_geo.service.client",
    "dasf_geo.service.dynamic",
    "dasf_geo.service.handler",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_import_and_are_documented(name):
    module = importlib.import_module(name)
    assert module.__doc__
    for public in module.__all__:
        obj = getattr(module, public)
        if callable(obj):
            assert obj.__doc__, f"{name}.{public} has no docstring"


def test_top_level_names():
    import dasf_geo
    from dasf_geo.backend import BackendClass, BackendFunction, BackendModule
    from dasf_geo.config import ClassConfig, FunctionConfig, ModuleConfig
    from dasf_geo.config.api import configure, registry

    assert dasf_geo.BackendModule is BackendModule
    assert dasf_geo.BackendFunction is BackendFunction
    assert dasf_geo.BackendClass is BackendClass
    assert dasf_geo.configure is configure
    assert dasf_geo.registry is registry
    assert dasf_geo.ModuleConfig is ModuleConfig
    assert dasf_geo.FunctionConfig is FunctionConfig
    assert dasf_geo.ClassConfig is ClassConfig
