"""One fake messaging config for tests that need options the real ones refuse.

:class:`FakeMessagingConfig` holds every option the transport reads as a
plain attribute, validates nothing (so a test can use a topic the broker is
meant to refuse, or a timeout of a fraction of a second) and builds its URLs
with the real configs' functions
(:func:`~dasf_geo.config.messaging.pulsar_topic_url`,
:func:`~dasf_geo.config.messaging.plain_topic_url`). Its defaults are the
real configs' (:mod:`dasf_geo.protocol.limits`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dasf_geo.config.messaging import plain_topic_url, pulsar_topic_url
from dasf_geo.protocol import limits

__all__ = ["FakeMessagingConfig"]


@dataclass
class FakeMessagingConfig:
    """A messaging config with what the transport reads, unvalidated.

    Attributes:
        base: ``ws://host:port`` of a Pulsar-layout broker, or the websocket
            URL of a plain-layout one (``layout="plain"``).
        topic: the topic.
        layout: ``"pulsar"`` or ``"plain"``.
        The others: the options of
        :class:`~dasf_geo.config.messaging.BaseMessagingConfig`, plus the
        backend's limits on incomplete fragmented requests.
    """

    base: str
    topic: str
    layout: str = "pulsar"
    header: dict[str, str] = field(default_factory=dict)
    max_workers: int | None = None
    queue_size: int | None = None
    max_payload_size: int = limits.DEFAULT_MAX_PAYLOAD_SIZE
    max_request_size: int = limits.MAX_REQUEST_SIZE
    producer_keep_alive: float = limits.DEFAULT_PRODUCER_KEEP_ALIVE
    producer_connection_timeout: float = limits.DEFAULT_CONNECTION_TIMEOUT
    subscription_name: str | None = None
    subscription_type: str | None = None
    persistent: bool = False
    fragment_timeout: float = limits.DEFAULT_FRAGMENT_TIMEOUT
    spool_threshold: int = limits.DEFAULT_SPOOL_THRESHOLD
    max_incomplete_requests: int | None = None
    max_incomplete_bytes: int | None = None

    def get_topic_url(self, topic: str, subscription: str | None = None) -> str:
        """The producer URL of ``topic`` or, with ``subscription``, the consumer URL."""
        path = f"{topic}/{subscription}" if subscription else topic
        if self.layout == "plain":
            return plain_topic_url(self.base, path)
        return pulsar_topic_url(
            self.base, path, consumer=bool(subscription), persistent=self.persistent
        )
