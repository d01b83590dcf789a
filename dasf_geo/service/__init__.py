"""Layer 6, service: what knows both the backend's models and the transport.

The service layer joins the two: it serves a backend module on its topic
and calls a backend from Python, and it holds the daeploy-style service API
that builds on both.

- :mod:`~dasf_geo.service.handler` -- :class:`ModuleHandler` (validate a
  request with the module's model, run it, serialise the result into the
  reply) and the entry points :func:`~dasf_geo.service.handler.listen`,
  :class:`~dasf_geo.service.handler.BackgroundListener` and
  :func:`~dasf_geo.service.handler.test_connect` behind
  ``BackendModule.listen()``/``test_connect()``
- :mod:`~dasf_geo.service.client` -- ``send_request``: a backend module's
  model and generated stubs call through the broker
- :mod:`~dasf_geo.service.dynamic` -- the dynamic client
  (``dasf_geo.connect``/``aconnect``, :class:`~dasf_geo.service.dynamic.Service`),
  built from a backend's API info (``_signature``, ``_members``)

Below this layer ``transport`` moves messages and knows no backend model;
``backend`` builds the models and knows no transport (its ``listen``,
``send_request`` and ``test_connect`` delegate here, the one declared
exception to the layering).

The daeploy SDK: ``from dasf_geo import service`` gives *the service object* (as in
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

Modules of the SDK: ``_service`` (the object), ``_reserved`` (the service's
handler with its reserved requests, shadow listener), ``_runtime`` (running),
``monitor_db`` (monitoring database), ``scheduler`` (call_every),
``_parameters``, ``communication`` (call_service, notify), ``utilities``,
``data_types``.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from dasf_geo.service import utilities
from dasf_geo.service._parameters import ParameterError
from dasf_geo.service._service import Entrypoint, Service
from dasf_geo.service._values import StoreError
from dasf_geo.service.communication import (
    NOTIFICATIONS_TOPIC,
    ServiceCallError,
    Severity,
    call_service,
    notify,
)

if TYPE_CHECKING:  # pragma: no cover
    from dasf_geo.service.data_types import (
        ArrayInput,
        ArrayOutput,
        DataFrameInput,
        DataFrameOutput,
    )
    from dasf_geo.service.monitor_db import MonitorStore

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


#: names imported on first use: pandas (the data types) and SQLAlchemy (the
#: monitoring store) are not loaded by a process that only serves or calls a
#: backend module
_LAZY = {
    "ArrayInput": "data_types",
    "ArrayOutput": "data_types",
    "DataFrameInput": "data_types",
    "DataFrameOutput": "data_types",
    "MonitorStore": "monitor_db",
}


def __getattr__(name: str) -> Any:
    """Import a name of :data:`_LAZY` from its submodule on first access.

    Raises:
        AttributeError: ``name`` is not a name of this package.
    """
    submodule = _LAZY.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    globals()[name] = value
    return value


class _ServiceModule(types.ModuleType, Service):
    """The package module, made the default :class:`Service` instance."""

    def __repr__(self) -> str:
        return Service.__repr__(self)


_module = sys.modules[__name__]
_module.__class__ = _ServiceModule
_module._setup(None, None)  # type: ignore[attr-defined]

#: the default service (this module itself)
service: Service = _module  # type: ignore[assignment]
