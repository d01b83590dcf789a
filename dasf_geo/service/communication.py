"""Talking to other services and to people: daeploy's ``communication``.

- :func:`call_service` calls an entrypoint of another service over the
  broker (the service's name is its topic; ``service_version`` calls one
  version directly on its topic ``<name>_<version>``, dots as dashes);
- :func:`notify` publishes a notification on the broker topic
  ``dasf-geo-notifications`` (the gateway lists them at ``/notifications``)
  and, with ``emails``, sends it by SMTP (``DASF_GEO_SMTP_*``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import smtplib
import ssl
import threading
import time
from datetime import datetime, timezone
from email.message import EmailMessage
from enum import Enum
from typing import Any

from dasf_geo.exceptions import (
    ConfigurationError,
    DasfGeoError,
    RemoteError,
    RequestTimeout,
    TransportError,
)
from dasf_geo.protocol.constants import NOTIFICATIONS_TOPIC
from dasf_geo.service import utilities

__all__ = [
    "HTTP_METHODS",
    "NOTIFICATIONS_TOPIC",
    "ServiceCallError",
    "Severity",
    "call_service",
    "check_method",
    "notification_payload",
    "notify",
    "send_email",
]

logger = logging.getLogger(__name__)

#: the HTTP methods an entrypoint may have
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
#: seconds :func:`call_service` waits by default
DEFAULT_TIMEOUT = 30.0


class Severity(Enum):
    """An enumeration of notification severities."""

    INFO = 0
    WARNING = 1
    CRITICAL = 2


class ServiceCallError(DasfGeoError):
    """A :func:`call_service` call failed: no answer in time, or an error.

    Attributes:
        service: the service called.
        errors: the structured errors of a validation error (else empty).
    """

    def __init__(
        self,
        message: str,
        *,
        service: str,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.errors = list(errors or [])


def check_method(method: Any, what: str = "method") -> str:
    """``method`` upper-cased if it is an HTTP method.

    Raises:
        ValueError: it is not one of :data:`HTTP_METHODS`.
    """
    if isinstance(method, str) and method.upper() in HTTP_METHODS:
        return method.upper()
    raise ValueError(
        f"{what} must be one of {', '.join(HTTP_METHODS)}, got {method!r:.40}"
    )


# --- call_service ---------------------------------------------------------

_services: dict[tuple[Any, ...], Any] = {}
_services_lock = threading.Lock()


def broker_options(url: str) -> dict[str, Any]:
    """``messaging_config`` keywords for a broker URL of either layout.

    ``ws://HOST:PORT`` is a Pulsar-layout broker (``broker=``); a URL with a
    path such as ``ws://host/ws`` a plain-layout one (``websocket_url=``,
    dasf-broker-django).
    """
    from urllib.parse import urlsplit

    path = urlsplit(url).path.strip("/")
    if path in ("", "ws/v2"):
        return {"broker": url}
    return {"websocket_url": url}


def _connect(topic: str, broker: str, header: dict[str, str], timeout: float) -> Any:
    from dasf_geo.service.dynamic import connect

    key = (os.getpid(), broker, topic, tuple(sorted(header.items())), timeout)
    with _services_lock:
        found = _services.get(key)
    if found is not None:
        return found
    svc = connect(
        topic,
        header=header or None,
        timeout=timeout,
        progress=False,
        **broker_options(broker),
    )
    with _services_lock:
        _services[key] = svc
    return svc


def _forget(topic: str) -> None:
    with _services_lock:
        for key in [k for k in _services if k[2] == topic]:
            with contextlib.suppress(Exception):
                _services.pop(key).close()


def close_connections() -> None:
    """Close the connections :func:`call_service` keeps open."""
    with _services_lock:
        found = list(_services.values())
        _services.clear()
    for svc in found:
        with contextlib.suppress(Exception):
            svc.close()


def call_service(
    service_name: str,
    entrypoint_name: str,
    arguments: dict[str, Any] | None = None,
    service_version: str | None = None,
    entrypoint_method: str = "POST",
    **request_kwargs: Any,
) -> Any:
    """Call an entrypoint in a different service.

    Example usage::

        data = call_service(
            service_name="other_service",
            entrypoint_name="other_entrypoint",
            arguments={"variable_name": value},
        )

    Args:
        service_name: the service which contains the entrypoint to call.
        entrypoint_name: the name of the entrypoint to call.
        arguments: arguments to the entrypoint, ``{"argument_name": value}``;
            Datasets, DataFrames and arrays travel in their encoded forms.
        service_version: call this version only (its topic
            ``<name>_<version>``, dots as dashes); default: the main
            version (whose shadows get a copy of the request).
        entrypoint_method: the HTTP method of the entrypoint; checked
            against the one the service published.
        **request_kwargs: ``timeout`` (seconds, default 30) and ``headers``
            (added to the broker handshake).

    Returns:
        the output of the entrypoint, decoded (a Dataset comes back as an
        ``xr.Dataset``).

    Raises:
        ValueError: ``entrypoint_method`` is not a valid HTTP method.
        TypeError: an unknown keyword argument.
        ServiceCallError: no broker is configured, the service does not
            answer within the timeout, has no such entrypoint, or answered
            with an error.
    """
    method = check_method(entrypoint_method, "entrypoint_method")
    timeout = float(request_kwargs.pop("timeout", DEFAULT_TIMEOUT))
    headers = dict(request_kwargs.pop("headers", None) or {})
    if request_kwargs:
        raise TypeError(
            "call_service() got unexpected keyword argument(s) "
            f"{', '.join(sorted(request_kwargs))}; it takes timeout= and headers="
        )
    if arguments is not None and not isinstance(arguments, dict):
        raise TypeError(
            f"arguments must be a dict of argument names to values, got "
            f"{type(arguments).__name__}"
        )
    topic = (
        service_name
        if service_version is None
        else utilities.versioned_topic(service_name, service_version)
    )
    shown = (
        service_name if service_version is None else f"{service_name} {service_version}"
    )
    broker = utilities.get_broker_url()
    if broker is None:
        raise ServiceCallError(
            f"cannot call service {shown!r}: no broker is configured (run this "
            "code in a service started with service.run(), or set "
            "DASF_GEO_BROKER_URL)",
            service=service_name,
        )
    header = {**utilities.get_headers(), **headers}
    try:
        svc = _connect(topic, broker, header, timeout)
    except RequestTimeout as exc:
        raise ServiceCallError(
            f"service {shown!r} did not answer within {timeout:g} s: no service "
            f"listens on topic {topic!r} at {broker}",
            service=service_name,
        ) from exc
    except (TransportError, ConfigurationError) as exc:
        raise ServiceCallError(
            f"cannot call service {shown!r}: {exc}", service=service_name
        ) from exc
    entry = (svc.api_info.get("service") or {}).get("entrypoints", {})
    if entrypoint_name not in svc.members:
        _forget(topic)  # it may have been restarted with other entrypoints
        raise ServiceCallError(
            f"service {shown!r} has no entrypoint {entrypoint_name!r}; it offers: "
            f"{', '.join(svc.members) or 'nothing'}",
            service=service_name,
        )
    expected = (entry.get(entrypoint_name) or {}).get("method")
    if expected and expected != method:
        raise ServiceCallError(
            f"entrypoint {entrypoint_name!r} of service {shown!r} takes {expected} "
            f"requests, not {method}",
            service=service_name,
        )
    function = getattr(svc, entrypoint_name)
    try:
        return function(**(arguments or {}))
    except TypeError as exc:  # arguments that do not fit the signature
        raise ServiceCallError(
            f"cannot call {entrypoint_name!r} of service {shown!r}: {exc}",
            service=service_name,
        ) from exc
    except RequestTimeout as exc:
        raise ServiceCallError(
            f"service {shown!r} did not answer the call of {entrypoint_name!r} "
            f"within {timeout:g} s",
            service=service_name,
        ) from exc
    except RemoteError as exc:
        raise ServiceCallError(
            f"service {shown!r} failed to run {entrypoint_name!r}: {exc}",
            service=service_name,
            errors=exc.errors,
        ) from exc
    except TransportError as exc:
        raise ServiceCallError(
            f"cannot call service {shown!r}: {exc}", service=service_name
        ) from exc


# --- notify -----------------------------------------------------------------

_last_sent: dict[tuple[str, str, str], float] = {}
_last_lock = threading.Lock()


def notification_payload(
    msg: str,
    severity: Severity,
    dashboard: bool,
    emails: list[str] | None,
    *,
    service: str | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """The JSON object of one notification (as published on the topic)."""
    return {
        "service": service or utilities.get_service_name(),
        "version": version or utilities.get_service_version(),
        "msg": msg,
        "severity": severity.name,
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "emails": list(emails) if emails else None,
        "dashboard": bool(dashboard),
    }


def notify(
    msg: str,
    severity: Severity,
    dashboard: bool = True,
    emails: list[str] | None = None,
    timer: int = 0,
) -> None:
    """Generates and sends a notification.

    The notification is published on the broker topic
    ``dasf-geo-notifications`` (the gateway lists it at ``/notifications``
    and the dashboard shows it when ``dashboard`` is true) and mailed to
    ``emails`` through the SMTP server of ``DASF_GEO_SMTP_HOST`` (``_PORT``,
    ``_USER``, ``_PASSWORD``, ``_FROM``, ``_STARTTLS``). Failures to publish
    or to mail are logged, never raised.

    Args:
        msg: the message to include for the recipient of the notification.
        severity: the severity of the notification.
        dashboard: show the notification on the dashboard.
        emails: addresses to mail the notification to (default: none).
        timer: seconds during which the same message with the same severity
            is not sent again.

    Raises:
        TypeError: ``msg`` is not a str, ``severity`` not a :class:`Severity`,
            or ``emails`` not a list of str (mistakes in the calling code).
    """
    if not isinstance(msg, str):
        raise TypeError(f"msg must be a str, got {type(msg).__name__}")
    if not isinstance(severity, Severity):
        raise TypeError(
            f"severity must be a Severity (Severity.INFO, .WARNING or .CRITICAL), "
            f"got {severity!r:.40}"
        )
    if emails is not None and (
        isinstance(emails, str) or not all(isinstance(e, str) for e in emails)
    ):
        raise TypeError("emails must be a list of addresses (str)")
    service = utilities.get_service_name()
    key = (service, msg, severity.name)
    now = time.monotonic()
    with _last_lock:
        last = _last_sent.get(key)
        if timer and last is not None and now - last < timer:
            logger.debug("notification suppressed by its timer: %s", msg)
            return
        _last_sent[key] = now
    note = notification_payload(msg, severity, dashboard, emails, service=service)
    publish_notification(note)
    if emails:
        send_email(note)


def publish_notification(note: dict[str, Any]) -> bool:
    """Publish ``note`` on the notifications topic; False (logged) on failure."""
    broker = utilities.get_broker_url()
    if broker is None:
        logger.warning(
            "notification not published (no broker configured): %s", note["msg"]
        )
        return False
    try:
        _publish(broker, json.dumps(note).encode("utf-8"))
    except Exception as exc:
        logger.error("could not publish the notification %r: %s", note["msg"], exc)
        return False
    return True


def _publish(broker: str, body: bytes) -> None:
    import pybase64

    from dasf_geo.service.dynamic import messaging_config
    from dasf_geo.transport.blocking import run_in_background
    from dasf_geo.transport.connection import AsyncProducer, check_ack

    # persistent when the service's topics are (DE_BACKEND_PERSISTENT), so
    # that the gateway, configured alike, consumes the same topic
    config = messaging_config(NOTIFICATIONS_TOPIC, **broker_options(broker))
    url = config.get_topic_url(NOTIFICATIONS_TOPIC)

    async def send() -> None:
        producer = AsyncProducer(url, utilities.get_headers(), open_timeout=10.0)
        await producer.connect()
        try:
            ack = await producer.send(
                pybase64.b64encode(body), {"messageType": "notification"}
            )
            check_ack(ack, url)
        finally:
            await producer.close()

    run_in_background(asyncio.wait_for(send(), 15.0))


def _smtp_settings() -> dict[str, Any] | None:
    host = os.environ.get("DASF_GEO_SMTP_HOST")
    if not host:
        return None
    starttls = os.environ.get("DASF_GEO_SMTP_STARTTLS", "").strip().lower()
    return {
        "host": host,
        "port": int(os.environ.get("DASF_GEO_SMTP_PORT") or 25),
        "user": os.environ.get("DASF_GEO_SMTP_USER") or None,
        "password": os.environ.get("DASF_GEO_SMTP_PASSWORD") or None,
        "sender": os.environ.get("DASF_GEO_SMTP_FROM") or "dasf-geo@localhost",
        "starttls": starttls in ("1", "true", "yes", "on"),
    }


def send_email(note: dict[str, Any]) -> bool:
    """Mail ``note`` to its ``emails``; False (logged) when that fails.

    Uses ``DASF_GEO_SMTP_HOST``/``_PORT``/``_USER``/``_PASSWORD``/``_FROM``/
    ``_STARTTLS``; never raises.
    """
    settings = _smtp_settings()
    recipients = note.get("emails") or []
    if settings is None:
        logger.error(
            "notification %r not mailed to %s: no SMTP server configured (set "
            "DASF_GEO_SMTP_HOST)",
            note["msg"],
            ", ".join(recipients),
        )
        return False
    message = EmailMessage()
    message["Subject"] = (
        f"[{note['severity']}] {note['service']} {note['version']}: {note['msg'][:80]}"
    )
    message["From"] = settings["sender"]
    message["To"] = ", ".join(recipients)
    message.set_content(
        f"{note['msg']}\n\nservice: {note['service']} {note['version']}\n"
        f"severity: {note['severity']}\ntime: {note['timestamp']}\n"
    )
    try:
        with smtplib.SMTP(settings["host"], settings["port"], timeout=15) as smtp:
            if settings["starttls"]:
                smtp.starttls(context=ssl.create_default_context())
            if settings["user"]:
                smtp.login(settings["user"], settings["password"] or "")
            refused = smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        logger.error(
            "could not mail the notification %r to %s via %s:%s: %s",
            note["msg"],
            ", ".join(recipients),
            settings["host"],
            settings["port"],
            exc,
        )
        return False
    if refused:
        logger.error(
            "the SMTP server refused the notification %r for %s",
            note["msg"],
            ", ".join(sorted(refused)),
        )
        return False
    return True
