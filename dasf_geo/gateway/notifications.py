"""``GET /notifications``: what services announced with ``service.notify``.

From start-up the gateway consumes the topic ``dasf-geo-notifications``
(its non-persistent and persistent forms on a Pulsar-layout broker) on a
subscription of its own, and keeps the last :data:`KEEP` notifications in
memory. Each message's payload is base64 of the UTF-8 JSON of one
notification (``service``, ``version``, ``msg``, ``severity``,
``timestamp``, ``emails``, ``dashboard``); anything else is logged and
dropped. The consumer reconnects when the broker goes away.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dasf_geo.gateway.discovery import NOTIFICATIONS_TOPIC
from dasf_geo.gateway.errors import HTTPError

__all__ = ["KEEP", "NotificationLog", "routes", "start", "stop"]

logger = logging.getLogger(__name__)

#: How many notifications are kept (newest).
KEEP = 1000
#: Seconds :meth:`NotificationLog.close` waits for its consumers to stop.
CLOSE_TIMEOUT = 5.0
SEVERITIES = ("INFO", "WARNING", "CRITICAL")


class NotificationLog:
    """The last :data:`KEEP` notifications, and the consumers filling it."""

    def __init__(self, keep: int = KEEP) -> None:
        self.items: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self._tasks: list[asyncio.Task[None]] = []
        self._consumers: list[Any] = []
        self._closed = False

    def add_payload(self, payload: str) -> None:
        """Decode one message payload and keep it if it is a notification."""
        from dasf_geo.protocol.messages import b64decode

        try:
            value = json.loads(b64decode(payload, "notification"))
        except Exception as exc:
            logger.warning("dropping a notification that is not JSON: %s", exc)
            return
        if not isinstance(value, dict) or not isinstance(value.get("msg"), str):
            logger.warning("dropping a notification without 'msg': %.200r", value)
            return
        self.items.append(value)

    def query(self, limit: int, severity: str | None) -> list[dict[str, Any]]:
        """Newest first, at most ``limit``, of ``severity`` (any if None)."""
        out = []
        for item in reversed(self.items):
            if (
                severity is not None
                and str(item.get("severity", "")).upper() != severity
            ):
                continue
            out.append(item)
            if len(out) >= limit:
                break
        return out

    def _handler(self, consumer: Any) -> Any:
        def on_message(msg: Any) -> None:
            consumer.ack_soon(msg.message_id)
            self.add_payload(msg.payload)

        return on_message

    async def run(self, url: str, header: dict[str, str]) -> None:
        """Consume ``url`` until closed, reconnecting with back-off."""
        from dasf_geo.exceptions import TransportError
        from dasf_geo.transport.connection import AsyncConsumer

        delay = 0.5
        while not self._closed:
            consumer = AsyncConsumer(url, header, open_timeout=10.0, on_message=print)
            consumer.on_message = self._handler(consumer)
            try:
                await consumer.connect()
                if self._closed:
                    # closed while connecting: on Python < 3.12 a connect
                    # that completes as the task is cancelled swallows the
                    # cancellation (asyncio.wait_for), so do not rely on it
                    return
                self._consumers.append(consumer)
                delay = 0.5
                await consumer.wait_closed()
            except TransportError as exc:
                logger.debug("notifications: %s", exc)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.close()
                if consumer in self._consumers:
                    self._consumers.remove(consumer)
            if self._closed:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def close(self) -> None:
        """Stop consuming; return within about :data:`CLOSE_TIMEOUT` seconds.

        Closing the consumers ends a task waiting on its connection even
        if its cancellation was lost; a task that still does not stop in
        time is left behind with a warning rather than waited for forever.
        """
        self._closed = True
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        await self._close_consumers()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
            if pending:
                logger.warning(
                    "notifications: %d consumer task(s) did not stop within %g s",
                    len(pending),
                    CLOSE_TIMEOUT,
                )
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: logged in run() already
        await self._close_consumers()

    async def _close_consumers(self) -> None:
        consumers = list(self._consumers)
        if consumers:
            closing = [asyncio.ensure_future(c.close()) for c in consumers]
            done, _ = await asyncio.wait(closing, timeout=CLOSE_TIMEOUT)
            for fut in done:
                if not fut.cancelled():
                    fut.exception()  # retrieved: a broken connection is gone


def _urls(settings: Any, subscription: str) -> list[str]:
    from dasf_geo.transport._common import add_query

    urls = []
    variants: list[dict[str, Any]] = [{}]
    if settings.broker and "persistent" not in settings.messaging:
        variants = [{"persistent": False}, {"persistent": True}]
    for variant in variants:
        from dasf_geo.service.dynamic import messaging_config

        config = messaging_config(
            NOTIFICATIONS_TOPIC,
            settings.broker,
            websocket_url=settings.websocket_url,
            header=settings.header,
            **{**settings.messaging, **variant},
        )
        urls.append(
            add_query(
                config.get_topic_url(NOTIFICATIONS_TOPIC, subscription),
                {"subscriptionType": "Exclusive"},
            )
        )
    return list(dict.fromkeys(urls))


async def start(state: Any) -> None:
    """Start consuming notifications for the gateway ``state``."""
    log = NotificationLog()
    state.extras["notifications"] = log
    subscription = f"dasf-geo-gateway-{secrets.token_hex(8)}"
    loop = asyncio.get_running_loop()
    for url in _urls(state.settings, subscription):
        log._tasks.append(
            loop.create_task(
                log.run(url, dict(state.settings.header)), name="notifications"
            )
        )


async def stop(state: Any) -> None:
    """Stop consuming notifications."""
    log = state.extras.pop("notifications", None)
    if log is not None:
        await log.close()


async def list_notifications(request: Request) -> Response:
    """``GET /notifications?limit=N&severity=S``: newest first."""
    raw_limit = request.query_params.get("limit", "100")
    try:
        limit = int(raw_limit)
    except ValueError:
        limit = -1
    if not 1 <= limit <= KEEP:
        raise HTTPError(
            400, f"limit must be an integer from 1 to {KEEP}, got {raw_limit[:40]!r}"
        )
    severity = request.query_params.get("severity")
    if severity is not None:
        severity = severity.upper()
        if severity not in SEVERITIES:
            raise HTTPError(
                400,
                f"severity must be one of {', '.join(SEVERITIES)}, got "
                f"{request.query_params['severity'][:40]!r}",
            )
    log = request.app.state.gateway.extras.get("notifications")
    items = log.query(limit, severity) if log is not None else []
    return JSONResponse({"notifications": items})


def routes() -> list[Route]:
    """The notifications route."""
    return [Route("/notifications", list_notifications, methods=["GET"])]
