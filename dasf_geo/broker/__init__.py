"""Layer 5, broker: the embedded DASF/Pulsar-compatible WebSocket broker.

- :class:`EmbeddedBroker` runs the broker in a background thread (tests,
  synchronous code, ``dasf-geo serve``);
- :class:`Broker` runs it inside a running asyncio loop;
- :class:`BrokerCore` is the sans-I/O routing, ack and delivery logic, over
  the data model of :mod:`~dasf_geo.broker.model` (:class:`Message`,
  :class:`Topic`, …) and the frame codec of :mod:`~dasf_geo.broker.frames`;
- :class:`MessageStore` keeps persistent topics in SQLite;
- :class:`AuthConfig` maps tokens to the topics they may use.

See docs/broker.md for usage, URL layouts, the delivery guarantee and limits.
"""

from dasf_geo.broker.auth import AuthConfig, Grant, token_from_request
from dasf_geo.broker.core import BrokerCore
from dasf_geo.broker.embedded import EmbeddedBroker
from dasf_geo.broker.model import (
    DEFAULT_MAX_INFLIGHT_BYTES,
    DEFAULT_MAX_TOPIC_BYTES,
    DEFAULT_MAX_TOTAL_BYTES,
    DEFAULT_RECEIVER_QUEUE_SIZE,
    SUBSCRIPTION_TYPES,
    Consumer,
    Message,
    SendErrorCode,
    SubscribeError,
    Subscription,
    Topic,
)
from dasf_geo.broker.names import Route, TopicName, parse_path
from dasf_geo.broker.server import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_PORT,
    Broker,
    is_loopback,
)
from dasf_geo.broker.store import MessageStore

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_INFLIGHT_BYTES",
    "DEFAULT_MAX_TOPIC_BYTES",
    "DEFAULT_MAX_TOTAL_BYTES",
    "DEFAULT_PORT",
    "DEFAULT_RECEIVER_QUEUE_SIZE",
    "SUBSCRIPTION_TYPES",
    "AuthConfig",
    "Broker",
    "BrokerCore",
    "Consumer",
    "EmbeddedBroker",
    "Grant",
    "Message",
    "MessageStore",
    "Route",
    "SendErrorCode",
    "SubscribeError",
    "Subscription",
    "Topic",
    "TopicName",
    "is_loopback",
    "parse_path",
    "token_from_request",
]
