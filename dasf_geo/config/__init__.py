"""Configuration models: ``configure``, ``registry`` and the config classes.

Names are imported lazily on first access, so that ``import dasf_geo.config``
stays cheap and the messaging and logging configs can be used without the
backend layer.

- :func:`configure` (:mod:`dasf_geo.config.api`), :data:`registry`
  (:mod:`dasf_geo.config.registry`, imported with the package)
- :class:`ModuleConfig`, :class:`FunctionConfig`, :class:`ClassConfig`
  (:mod:`dasf_geo.config.backend`)
- :class:`BaseMessagingConfig`, :class:`PulsarConfig`,
  :class:`WebsocketURLConfig` (:mod:`dasf_geo.config.messaging`)
- :class:`LoggingConfig` (:mod:`dasf_geo.config.logging`)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# ``dasf_geo.config.registry`` names both the global registry and the
# submodule that defines it. The import system binds the package attribute to
# a submodule when it loads it, so the object is bound here, once, after that:
# ``from dasf_geo.config import registry`` is the object whatever the order of
# imports.
from dasf_geo.config.registry import registry

if TYPE_CHECKING:
    from dasf_geo.config.api import configure
    from dasf_geo.config.backend import ClassConfig, FunctionConfig, ModuleConfig
    from dasf_geo.config.logging import LoggingConfig
    from dasf_geo.config.messaging import (
        BaseMessagingConfig,
        PulsarConfig,
        WebsocketURLConfig,
    )

__all__ = [
    "BaseMessagingConfig",
    "ClassConfig",
    "FunctionConfig",
    "LoggingConfig",
    "ModuleConfig",
    "PulsarConfig",
    "WebsocketURLConfig",
    "configure",
    "registry",
]

# public name -> submodule that defines it
_LAZY = {
    "configure": "api",
    "ModuleConfig": "backend",
    "FunctionConfig": "backend",
    "ClassConfig": "backend",
    "BaseMessagingConfig": "messaging",
    "PulsarConfig": "messaging",
    "WebsocketURLConfig": "messaging",
    "LoggingConfig": "logging",
}


def __getattr__(name: str) -> Any:
    """Import the public name ``name`` from its submodule on first access.

    Raises:
        AttributeError: ``name`` is not a public name of this package.
    """
    submodule = _LAZY.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
