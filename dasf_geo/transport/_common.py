"""Pieces shared by the caller and the backend side of the transport."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

from dasf_geo.protocol.constants import DEFAULT_MAX_PAYLOAD_SIZE, EXT_TRANSFER
from dasf_geo.protocol.fragments import split_payload
from dasf_geo.transport.connection import AsyncProducer

__all__ = ["MessagingSettings", "add_query", "send_payload", "setting"]

logger = logging.getLogger(__name__)


class MessagingSettings(Protocol):
    """What the transport reads from a messaging config.

    :class:`dasf_geo.config.PulsarConfig` and
    :class:`dasf_geo.config.WebsocketURLConfig` provide it.
    """

    topic: str
    header: dict[str, str]

    def get_topic_url(self, topic: str, subscription: str | None = None) -> str:
        """Producer URL (no subscription) or consumer URL of ``topic``."""
        ...


def setting(config: Any, name: str, default: Any) -> Any:
    """``config.name`` if set (not None), else ``default``."""
    value = getattr(config, name, None)
    return default if value is None else value


def header_of(config: Any) -> dict[str, str]:
    """The handshake headers of ``config`` as a dict of strings."""
    header = getattr(config, "header", None) or {}
    if isinstance(header, str):
        header = json.loads(header)
    return {str(k): str(v) for k, v in dict(header).items()}


def add_query(url: str, params: Mapping[str, Any]) -> str:
    """Append query parameters to ``url`` (keeping any it has)."""
    if not params:
        return url
    sep = "&" if "?" in url else "?"
    return url + sep + urlencode({k: str(v) for k, v in params.items()})


async def send_payload(
    producer: AsyncProducer,
    data: bytes | bytearray | memoryview,
    properties: Mapping[str, Any],
    max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
) -> int:
    """Send ``data`` as one message, or as fragments if it is too large.

    Fragments are pipelined within the producer's window and share a message
    key, so a broker that dispatches by key keeps them on one consumer.

    Returns:
        The number of messages sent.

    Raises:
        SendError, TransportError: as :meth:`AsyncProducer.send`.
    """
    futures = []
    try:
        for fragment in split_payload(data, max_payload_size):
            props = dict(properties)
            props.update(fragment.properties)
            key = fragment.properties.get(EXT_TRANSFER)
            futures.append(await producer.submit(fragment.payload, props, key=key))
        for fut in futures:
            await producer.wait_ack(fut)
    finally:
        for fut in futures:
            if fut.done() and not fut.cancelled():
                fut.exception()  # retrieved: errors are raised above
    return len(futures)
