"""What a service knows about itself: daeploy's ``utilities``, mapped to DASF.

Every function reads the environment (``DASF_GEO_*``) at the time it is
called, so that a value set by :meth:`Service.run <dasf_geo.service.Service.run>`
or by ``dasf-geo serve`` is what a service's code sees.

=================================  =========================================
daeploy                            dasf_geo
=================================  =========================================
``DAEPLOY_SERVICE_NAME``           ``DASF_GEO_SERVICE_NAME`` (the topic)
``DAEPLOY_SERVICE_VERSION``        ``DASF_GEO_SERVICE_VERSION``
manager URL / hostname             ``DASF_GEO_GATEWAY_URL`` (the HTTP gateway)
(none)                             ``DASF_GEO_BROKER_URL``
``DAEPLOY_SERVICE_AUTH_TOKEN``     ``DASF_GEO_SERVICE_TOKEN``
``DAEPLOY_SERVICE_DB_TABLE_LIMIT`` ``DASF_GEO_STORE_LIMIT`` (``90 days``)
``DAEPLOY_SERVICE_DB_CLEAN_...``   ``DASF_GEO_STORE_CLEAN_INTERVAL`` (``7 days``)
``DAEPLOY_AUTHORIZED_DOMAINS``     ``DASF_GEO_AUTHORIZED_DOMAINS``
=================================  =========================================
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "CLEAN_INTERVAL_UNITS",
    "DEFAULT_CLEAN_INTERVAL",
    "DEFAULT_GATEWAY_URL",
    "DEFAULT_STORE_LIMIT",
    "STORE_LIMIT_UNITS",
    "get_authorized_domains",
    "get_broker_url",
    "get_daeploy_manager_hostname",
    "get_daeploy_manager_url",
    "get_db_clean_interval_seconds",
    "get_db_table_limit",
    "get_headers",
    "get_manager_url",
    "get_service_access_token",
    "get_service_name",
    "get_service_root_path",
    "get_service_version",
    "match_limit_and_unit",
    "versioned_topic",
]

#: the units a store limit may have (``DASF_GEO_STORE_LIMIT``)
STORE_LIMIT_UNITS = ["rows", "days", "hours", "minutes", "seconds"]
#: the units a clean interval may have (``DASF_GEO_STORE_CLEAN_INTERVAL``)
CLEAN_INTERVAL_UNITS = ["days", "hours", "minutes", "seconds"]
DEFAULT_STORE_LIMIT = "90 days"
DEFAULT_CLEAN_INTERVAL = "7 days"
DEFAULT_SERVICE_VERSION = "0.0.0"
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8000"

#: the service whose code runs in this context (set while an entrypoint or
#: a periodic task runs), so that several services can share one process
current_service: ContextVar[Any] = ContextVar("dasf_geo_current_service", default=None)

_SECONDS = {"days": 86400.0, "hours": 3600.0, "minutes": 60.0, "seconds": 1.0}
_LIMIT = re.compile(r"\s*(\S+)\s+(\S+)\s*\Z")


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def get_service_name() -> str:
    """Name of this service: its topic on the broker.

    Returns:
        ``DASF_GEO_SERVICE_NAME``, or the name of the running script.
    """
    svc = current_service.get()
    if svc is not None:
        return str(svc.name)
    return default_service_name()


def default_service_name() -> str:
    """``DASF_GEO_SERVICE_NAME``, else the running script's name."""
    name = _env("DASF_GEO_SERVICE_NAME")
    if name is not None:
        return name
    import sys

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or "service"
    return os.path.splitext(os.path.basename(path))[0] or "service"


def get_service_version() -> str:
    """Version of this service.

    Returns:
        ``DASF_GEO_SERVICE_VERSION`` (e.g. ``"1.2.3"``), default ``"0.0.0"``.
    """
    svc = current_service.get()
    if svc is not None:
        return str(svc.version)
    return default_service_version()


def default_service_version() -> str:
    """``DASF_GEO_SERVICE_VERSION``, else ``"0.0.0"``."""
    return _env("DASF_GEO_SERVICE_VERSION") or DEFAULT_SERVICE_VERSION


def versioned_topic(name: str, version: str) -> str:
    """The topic on which only one version of a service answers.

    ``<name>_<version>`` with the version's dots as dashes
    (``weather_1-2-0``): topic names of dasf-broker-django are slugs.
    """
    return f"{name}_{version.replace('.', '-')}"


def get_service_root_path() -> str:
    """The path at which the gateway serves this service.

    Returns:
        ``/services/<service_name>`` (daeploy:
        ``/services/<service_name>_<service_version>``; with dasf_geo the
        version is reached as its own topic, :func:`versioned_topic`, see
        :func:`dasf_geo.service.call_service`).
    """
    return f"/services/{get_service_name()}"


def get_manager_url() -> str:
    """URL of the HTTP gateway in front of this service's broker.

    Returns:
        the gateway started beside this service's embedded broker, else
        ``DASF_GEO_GATEWAY_URL``, default ``http://127.0.0.1:8000``.
    """
    svc = current_service.get()
    running = None if svc is None else getattr(svc, "gateway_url", None)
    if running:
        return str(running).rstrip("/")
    return (_env("DASF_GEO_GATEWAY_URL") or DEFAULT_GATEWAY_URL).rstrip("/")


def get_daeploy_manager_url() -> str:
    """daeploy's name for :func:`get_manager_url` (the gateway URL)."""
    return get_manager_url()


def get_daeploy_manager_hostname() -> str:
    """The host name of the gateway (from :func:`get_manager_url`)."""
    return urlsplit(get_manager_url()).hostname or ""


def get_broker_url() -> str | None:
    """The broker this service uses, if one is configured.

    Returns:
        the running service's broker (``ws://HOST:PORT``, or the websocket
        URL of a plain-layout broker), else ``DASF_GEO_BROKER_URL``; else
        ``ws://DE_BACKEND_HOST:DE_BACKEND_PORT``
        when either is set; else None (a service then starts an embedded
        broker).
    """
    svc = current_service.get()
    running = None if svc is None else getattr(svc, "broker_url", None)
    if running:
        return str(running)
    url = _env("DASF_GEO_BROKER_URL")
    if url is not None:
        return url
    host, port = _env("DE_BACKEND_HOST"), _env("DE_BACKEND_PORT")
    if host or port:
        return f"ws://{host or 'localhost'}:{port or 8080}"
    return None


def get_service_access_token() -> str | None:
    """The token this service presents to the broker and to other services.

    Returns:
        ``DASF_GEO_SERVICE_TOKEN``, or None when the broker needs none.
    """
    return _env("DASF_GEO_SERVICE_TOKEN")


def get_headers() -> dict[str, str]:
    """The headers of this service's broker handshakes and gateway calls.

    Returns:
        ``{"Authorization": "Bearer <token>"}`` with a token, else ``{}``.
    """
    token = get_service_access_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def get_authorized_domains() -> list[str]:
    """Domains an auth header may be sent to (``DASF_GEO_AUTHORIZED_DOMAINS``).

    Returns:
        the comma-separated list of the variable, plus the gateway's host.
    """
    raw = _env("DASF_GEO_AUTHORIZED_DOMAINS") or ""
    domains = [d.strip() for d in raw.split(",") if d.strip()]
    host = get_daeploy_manager_hostname()
    if host and host not in domains:
        domains.append(host)
    return domains


def match_limit_and_unit(string: str, accepted_units: list[str]) -> tuple[str, str]:
    """Split ``"<number> <unit>"`` into its number and unit.

    Args:
        string: e.g. ``"90 days"`` or ``"10000 rows"``.
        accepted_units: the units allowed.

    Returns:
        ``(number, unit)`` as strings, e.g. ``("90", "days")``.

    Raises:
        ValueError: ``string`` is not a positive whole number followed by one
            of ``accepted_units``; the message names them.
    """
    match = _LIMIT.match(string) if isinstance(string, str) else None
    if match is not None:
        number, unit = match.group(1), match.group(2).lower()
        if number.isdigit() and int(number) > 0 and unit in accepted_units:
            return number, unit
    raise ValueError(
        f"invalid limit {string!r}: expected a positive whole number and one of "
        f"the units {', '.join(accepted_units)} (e.g. '90 {accepted_units[0]}')"
    )


def get_db_table_limit() -> tuple[int, str]:
    """How much the monitoring store keeps (``DASF_GEO_STORE_LIMIT``).

    Returns:
        ``(number, unit)``, unit one of rows, days, hours, minutes, seconds;
        default ``(90, "days")``.

    Raises:
        ValueError: the variable is not like ``"90 days"`` or ``"10000 rows"``.
    """
    text = _env("DASF_GEO_STORE_LIMIT") or DEFAULT_STORE_LIMIT
    try:
        number, unit = match_limit_and_unit(text, STORE_LIMIT_UNITS)
    except ValueError as exc:
        raise ValueError(f"DASF_GEO_STORE_LIMIT: {exc}") from None
    return int(number), unit


def get_db_clean_interval_seconds() -> float:
    """Seconds between two clean-ups of the store (``DASF_GEO_STORE_CLEAN_INTERVAL``).

    Returns:
        the interval in seconds; default 7 days.

    Raises:
        ValueError: the variable is not like ``"7 days"`` or ``"30 minutes"``.
    """
    text = _env("DASF_GEO_STORE_CLEAN_INTERVAL") or DEFAULT_CLEAN_INTERVAL
    try:
        number, unit = match_limit_and_unit(text, CLEAN_INTERVAL_UNITS)
    except ValueError as exc:
        raise ValueError(f"DASF_GEO_STORE_CLEAN_INTERVAL: {exc}") from None
    return int(number) * _SECONDS[unit]


def limit_seconds(number: int, unit: str) -> float:
    """``number`` ``unit`` (days, hours, minutes or seconds) in seconds."""
    return number * _SECONDS[unit]
