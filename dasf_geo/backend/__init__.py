"""Layer 3, backend: functions, classes and modules as pydantic models.

- :class:`BackendFunction` -- a function as a request model
  (:mod:`dasf_geo.backend.function`)
- :class:`BackendClass` -- a class and its methods
  (:mod:`dasf_geo.backend.class_`)
- :class:`BackendModule` -- the root model over a module's members, with
  ``process_request``, ``get_api_info``, ``generate`` and the delegations to
  the transport (:mod:`dasf_geo.backend.module`)
"""

from __future__ import annotations

from dasf_geo.backend.class_ import BackendClass, BackendClassConfig, ClassAPIModel
from dasf_geo.backend.function import (
    BackendFunction,
    BackendFunctionConfig,
    FunctionAPIModel,
    ReturnModel,
)
from dasf_geo.backend.module import BackendModule, BackendModuleConfig, ModuleAPIModel

__all__ = [
    "BackendClass",
    "BackendClassConfig",
    "BackendFunction",
    "BackendFunctionConfig",
    "BackendModule",
    "BackendModuleConfig",
    "ClassAPIModel",
    "FunctionAPIModel",
    "ModuleAPIModel",
    "ReturnModel",
]
