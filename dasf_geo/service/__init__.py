"""Layer 6, service: the daeploy SDK on dasf_geo.

``from dasf_geo import service`` gives *the service object* (as in
daeploy): decorate functions with ``@service.entrypoint``, store values
with ``service.store(...)``, run functions periodically with
``@service.call_every(seconds)``, add parameters with
``service.add_parameter(...)`` and start it all with ``service.run()``::

    from dasf_geo import service
    from dasf_geo.service.communication import notify, Severity

    @service.entrypoint
    def hello(name: str) -> str:
        return f"Hello {name}"

    if __name__ == "__main__":
        service.run()

The package module *is* that object: it is an instance of :class:`Service`
(and of ``types.ModuleType``), so ``import dasf_geo.service`` and ``from
dasf_geo import service`` give the same thing, and its submodules
(``utilities``, ``communication``, ``data_types``, ``monitor_db``) import as usual.
Further services in one process are created with ``Service(name, version)``.

Modules: ``_service`` (the object), ``_handler`` (reserved requests,
shadow listener), ``_runtime`` (running), ``monitor_db`` (monitoring database),
``scheduler`` (call_every), ``_parameters``, ``communication`` (call_service,
notify), ``utilities``, ``data_types``.
"""

from __future__ import annotations

import sys
import types

from dasf_geo.service import utilities
from dasf_geo.service._parameters import ParameterError
from dasf_geo.service._service import Entrypoint, Service
from dasf_geo.service.communication import (
    NOTIFICATIONS_TOPIC,
    ServiceCallError,
    Severity,
    call_service,
    notify,
)
from dasf_geo.service.data_types import (
    ArrayInput,
    ArrayOutput,
    DataFrameInput,
    DataFrameOutput,
)
from dasf_geo.service.monitor_db import MonitorStore, StoreError

__all__ = [
    "NOTIFICATIONS_TOPIC",
    "ArrayInput",
    "ArrayOutput",
    "DataFrameInput",
    "DataFrameOutput",
    "Entrypoint",
    "MonitorStore",
    "ParameterError",
    "Service",
    "ServiceCallError",
    "Severity",
    "StoreError",
    "call_service",
    "notify",
    "service",
    "utilities",
]


class _ServiceModule(types.ModuleType, Service):
    """The package module, made the default :class:`Service` instance."""

    def __repr__(self) -> str:
        return Service.__repr__(self)


_module = sys.modules[__name__]
_module.__class__ = _ServiceModule
_module._setup(None, None)  # type: ignore[attr-defined]

#: the default service (this module itself)
service: Service = _module  # type: ignore[assignment]
