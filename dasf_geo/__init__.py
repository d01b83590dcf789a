"""dasf_geo: typed scientific Python as remote DASF services.

Write plain, typed functions and classes that take and return xarray
Datasets and DataArrays, pandas DataFrames and numpy arrays, list them in
``__all__`` and call :func:`main`: dasf_geo turns them into validated RPC
endpoints that speak the DASF protocol over a WebSocket message broker.

The package is organised in layers, each using only the ones listed before
it:

``protocol``  pure message building/parsing and fragmentation (no I/O)
``data``      the type registry: validators, serializers, CF and ``crs`` checks
``backend``   functions/classes/modules as pydantic models, ``configure``
``transport`` WebSocket I/O: the backend's listen loop and the callers
``broker``    the embedded DASF/Pulsar-compatible message broker
``service``   serving and calling backend modules (knows backend and
              transport), the dynamic client, the daeploy-style service API
``cli``       the ``dasf-geo`` command line

Top-level names are imported lazily so that ``import dasf_geo`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it
_LAZY: dict[str, str] = {
    "main": "dasf_geo.cli.module",
    "configure": "dasf_geo.config",
    "registry": "dasf_geo.config.registry",  # the object, not the submodule
    "BackendModule": "dasf_geo.backend",
    "BackendFunction": "dasf_geo.backend",
    "BackendClass": "dasf_geo.backend",
    "ModuleConfig": "dasf_geo.config",
    "FunctionConfig": "dasf_geo.config",
    "ClassConfig": "dasf_geo.config",
    "PulsarConfig": "dasf_geo.config",
    "WebsocketURLConfig": "dasf_geo.config",
    "LoggingConfig": "dasf_geo.config",
    "DasfGeoError": "dasf_geo.exceptions",
    "PayloadTooLarge": "dasf_geo.exceptions",
    "TransferOptions": "dasf_geo.protocol.options",
    "transfer_options": "dasf_geo.protocol.options",
    "connect": "dasf_geo.service.dynamic",
    "aconnect": "dasf_geo.service.dynamic",
    "service": "dasf_geo.service",  # the service object (the package itself)
}

__all__ = [
    "BackendClass",
    "BackendFunction",
    "BackendModule",
    "ClassConfig",
    "DasfGeoError",
    "FunctionConfig",
    "LoggingConfig",
    "ModuleConfig",
    "PayloadTooLarge",
    "PulsarConfig",
    "TransferOptions",
    "WebsocketURLConfig",
    "__version__",
    "aconnect",
    "configure",
    "connect",
    "main",
    "registry",
    "service",
    "transfer_options",
]


if TYPE_CHECKING:  # pragma: no cover
    from dasf_geo.backend import BackendClass, BackendFunction, BackendModule
    from dasf_geo.cli.module import main
    from dasf_geo.config import (
        ClassConfig,
        FunctionConfig,
        LoggingConfig,
        ModuleConfig,
        PulsarConfig,
        WebsocketURLConfig,
        configure,
        registry,
    )
    from dasf_geo.exceptions import DasfGeoError, PayloadTooLarge
    from dasf_geo.protocol.options import TransferOptions, transfer_options
    from dasf_geo.service import service
    from dasf_geo.service.dynamic import aconnect, connect


def __getattr__(name: str) -> Any:
    try:
        module_name = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'dasf_geo' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
