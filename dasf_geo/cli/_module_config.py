"""Options of a backend module's command line merged into its ModuleConfig.

Precedence, rising: ``DE_BACKEND_*``/``DE_LOGGING_*`` environment variables,
the keyword arguments of :func:`~dasf_geo.main`, the command line. Which URL
layout the messaging options describe is decided by
:func:`dasf_geo.config.messaging.config_class_for`.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from dasf_geo.cli._module_parser import LOG as _LOG
from dasf_geo.cli._module_parser import MSG as _MSG
from dasf_geo.config.logging import LoggingConfig
from dasf_geo.config.messaging import (
    PULSAR_OPTIONS,
    URL_OPTIONS,
    BaseMessagingConfig,
    PulsarConfig,
    WebsocketURLConfig,
    config_class_for,
    environment_options,
)
from dasf_geo.exceptions import ConfigurationError, format_validation_error

__all__ = ["build_config", "split_namespace"]

_SHARED_FIELDS = frozenset(BaseMessagingConfig.model_fields)
_PULSAR_ONLY = frozenset(PulsarConfig.model_fields) - _SHARED_FIELDS
_URL_ONLY = frozenset(WebsocketURLConfig.model_fields) - _SHARED_FIELDS
_MESSAGING_FIELDS = _SHARED_FIELDS | _PULSAR_ONLY | _URL_ONLY
assert frozenset(PULSAR_OPTIONS) == _PULSAR_ONLY
assert frozenset(URL_OPTIONS) == _URL_ONLY


def split_namespace(
    ns: argparse.Namespace,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Split the parsed options into (messaging, logging, module, command)."""
    messaging: dict[str, Any] = {}
    log: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in vars(ns).items():
        if key.startswith(_MSG):
            messaging[key[len(_MSG) :]] = value
        elif key.startswith(_LOG):
            log[key[len(_LOG) :]] = value
        else:
            rest[key] = value
    module: dict[str, Any] = {
        k: rest.pop(k) for k in ("doc", "members", "debug") if k in rest
    }
    return messaging, log, module, rest


def _as_dict(value: Any, what: str) -> tuple[dict[str, Any], type | None]:
    """A main() keyword value as a dict, plus its config class if it is one."""
    if value is None:
        return {}, None
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_unset=True), type(value)
    if isinstance(value, Mapping):
        return dict(value), None
    raise ConfigurationError(
        f"main(): {what} must be a dict or a config object, got "
        f"{type(value).__name__} {value!r:.80}"
    )


def _given(values: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    return [n for n in names if values.get(n) not in (None, "")]


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _messaging_config(
    main_values: dict[str, Any], main_cls: type | None, cli: dict[str, Any]
) -> BaseMessagingConfig:
    """Build the messaging config: command line > main() > environment.

    Raises:
        ConfigurationError: options of both connection methods are given on
            the command line, or a value is invalid.
    """
    cli_urls, cli_pulsar = _given(cli, _URL_ONLY), _given(cli, _PULSAR_ONLY)
    if cli_urls and cli_pulsar:
        raise ConfigurationError(
            "give either the Pulsar options ("
            + ", ".join(_option(n) for n in sorted(cli_pulsar))
            + ") or the websocket URL options ("
            + ", ".join(_option(n) for n in sorted(cli_urls))
            + "), not both"
        )
    cls = config_class_for(cli, main_values, main_cls, environment_options())
    drop = _PULSAR_ONLY if cls is WebsocketURLConfig else _URL_ONLY
    values = {k: v for k, v in main_values.items() if k not in drop}
    values.update(cli)
    values = {
        k: v for k, v in values.items() if not (k in _URL_ONLY and v in (None, ""))
    }
    return cls(**values)


_MODULE_OPTIONS = {
    "doc": "-d/--description",
    "members": "--members",
    "debug": "--debug",
}


def build_config(config_kws: dict[str, Any], ns: argparse.Namespace) -> Any:
    """Merge main()'s keywords and the parsed options into a ModuleConfig.

    Raises:
        ConfigurationError: a value is invalid; the message names it.
    """
    from dasf_geo.config.backend import ModuleConfig

    cli_msg, cli_log, cli_module, _ = split_namespace(ns)
    kws = dict(config_kws)
    base = kws.pop("config", None)
    if base is not None:
        if not isinstance(base, ModuleConfig):
            raise ConfigurationError(
                "main(): config must be a ModuleConfig, got "
                f"{type(base).__name__} {base!r:.80}"
            )
        kws = {
            **{name: getattr(base, name) for name in base.model_fields_set},
            **kws,
        }
    main_msg, main_cls = _as_dict(kws.pop("messaging_config", None), "messaging_config")
    for key in [k for k in kws if k in _MESSAGING_FIELDS]:
        # main(topic=...) is short for main(messaging_config=dict(topic=...))
        main_msg[key] = kws.pop(key)
    main_log, _ = _as_dict(kws.pop("log_config", None), "log_config")

    messaging = _messaging_config(main_msg, main_cls, cli_msg)
    log_config = LoggingConfig(**{**main_log, **cli_log})
    kws.update(cli_module)
    try:
        return ModuleConfig(messaging_config=messaging, log_config=log_config, **kws)
    except ValidationError as exc:
        raise ConfigurationError(
            format_validation_error(
                exc,
                "main() configuration",
                _MODULE_OPTIONS,
                None,
                ModuleConfig.model_fields,
            )
        ) from exc
