"""Messaging configuration: how a backend or a caller reaches the broker.

Two concrete configs exist, both read from keyword arguments and from
environment variables with the prefix ``DE_BACKEND_`` (for example
``DE_BACKEND_TOPIC``, ``DE_BACKEND_HOST``, ``DE_BACKEND_HEADER``):

- :class:`PulsarConfig` builds Apache Pulsar style WebSocket URLs from a host,
  a port, a tenant and a namespace (this is also the layout of the embedded
  broker and of ``dasf-broker-django``);
- :class:`WebsocketURLConfig` appends the topic to one fully qualified base
  URL (or to a separate producer and consumer URL).

Keyword arguments take precedence over the environment. Constructing a config
with a bad value raises :class:`~dasf_geo.exceptions.ConfigurationError` whose
message names the option, its environment variable and what to change.
When a config is validated as part of a bigger pydantic model (for example as
``ModuleConfig.messaging_config``) pydantic reports the same messages in a
:class:`pydantic.ValidationError`.

The URL spelling of both layouts, and the splitting of a list of broker
URLs, are in :mod:`dasf_geo.config._urls` (re-exported here).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from dasf_geo.config._checks import (
    MAX_HEADER_SIZE,
    check_host,
    check_name,
    parse_header,
    short,
)
from dasf_geo.config._urls import plain_topic_url, pulsar_topic_url, split_broker_urls
from dasf_geo.exceptions import ConfigurationError, format_validation_error
from dasf_geo.protocol import limits

__all__ = [
    "ENV_PREFIX",
    "MAX_HEADER_SIZE",
    "MAX_PAYLOAD_SIZE_LIMIT",
    "PULSAR_OPTIONS",
    "URL_OPTIONS",
    "BaseMessagingConfig",
    "PulsarConfig",
    "WebsocketURLConfig",
    "config_class_for",
    "environment_options",
    "format_validation_error",
    "plain_topic_url",
    "pulsar_topic_url",
    "split_broker_urls",
]

#: Prefix of the environment variables read by the messaging configs.
ENV_PREFIX = "DE_BACKEND_"

#: Upper bound for ``max_payload_size``: far above any broker's frame limit
#: (Pulsar's ``webSocketMaxTextFrameSize`` defaults to 1 MiB), low enough to
#: catch a typo such as an extra zero group before a message is ever sent.
MAX_PAYLOAD_SIZE_LIMIT = 64 * 1024 * 1024


class _Settings(BaseSettings):
    """Shared behaviour: bad values raise ConfigurationError on construction."""

    #: how each field is spelled on the per-module command line
    _option_names: ClassVar[dict[str, str]] = {}

    def __init__(self, **data: Any) -> None:
        """Read keyword arguments, then the environment, and validate.

        Raises:
            ConfigurationError: a value is missing or invalid; the message
                names the option and its environment variable.
        """
        try:
            super().__init__(**data)
        except ValidationError as exc:
            prefix = self.model_config.get("env_prefix") or None
            raise ConfigurationError(
                format_validation_error(
                    exc,
                    type(self).__name__,
                    self._option_names,
                    prefix,
                    type(self).model_fields,
                )
            ) from exc


_MESSAGING_OPTIONS = {
    "topic": "-t/--topic",
    "header": "--header",
    "max_workers": "--max-workers",
    "queue_size": "--queue-size",
    "max_payload_size": "--max-payload-size",
    "producer_keep_alive": "--producer-keep-alive",
    "producer_connection_timeout": "--producer-connection-timeout",
    "spool_threshold": "--spool-threshold",
    "host": "-H/--host",
    "port": "-p/--port",
    "persistent": "--persistent",
    "tenant": "--tenant",
    "namespace": "--namespace",
    "websocket_url": "--websocket-url",
    "producer_url": "--producer-url",
    "consumer_url": "--consumer-url",
}


class BaseMessagingConfig(_Settings):
    """Options shared by every way of connecting to a message broker.

    Read from keyword arguments and environment variables prefixed with
    ``DE_BACKEND_`` (keyword arguments win). Subclasses implement
    :meth:`get_topic_url`.

    Raises:
        ConfigurationError: on construction, when ``topic`` is missing or a
            value is invalid (e.g. ``queue_size`` smaller than
            ``max_workers``).
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="forbid",
        env_ignore_empty=True,  # VAR= in a compose file means "not set"
    )
    _option_names: ClassVar[dict[str, str]] = _MESSAGING_OPTIONS

    topic: str = Field(
        description="The topic identifier under which to register at the broker."
    )

    header: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description=(
            "Header parameters sent with the WebSocket handshake, e.g. "
            '{"authorization": "Token ..."}; a JSON object as text is accepted.'
        ),
    )

    max_workers: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description=(
            "Number of requests handled concurrently. Default: one at a time."
        ),
    )

    queue_size: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description=(
            "Maximum number of requests waiting or running; more are answered "
            "with an error. Must be at least max_workers. Default: no limit."
        ),
    )

    max_payload_size: int = Field(
        default=limits.DEFAULT_MAX_PAYLOAD_SIZE,
        ge=4,
        le=MAX_PAYLOAD_SIZE_LIMIT,
        description=(
            "Largest base64 payload per message, in characters; bigger "
            "payloads are sent in fragments. Must stay below the broker's "
            "frame limit (Pulsar: webSocketMaxTextFrameSize)."
        ),
    )

    producer_keep_alive: int = Field(
        default=limits.DEFAULT_PRODUCER_KEEP_ALIVE,
        ge=0,
        le=7 * 24 * 3600,
        description=(
            "Seconds an idle producer connection stays open; 0 closes it "
            "right after each acknowledged message."
        ),
    )

    producer_connection_timeout: int = Field(
        default=limits.DEFAULT_CONNECTION_TIMEOUT,
        ge=1,
        le=24 * 3600,
        description=(
            "Seconds granted to a producer to connect to the broker before "
            "the message is given up."
        ),
    )

    subscription_name: str | None = Field(
        default=None,
        description=(
            "Subscription of the backend's consumer; None uses a stable name "
            "derived from the topic, so that several workers share the load."
        ),
    )

    subscription_type: Literal["Shared", "Exclusive", "Failover", "Key_Shared"] = Field(
        default="Shared", description="Pulsar subscription type."
    )

    max_request_size: int = Field(
        default=limits.MAX_REQUEST_SIZE,
        ge=1,
        le=1 << 40,
        description="Largest reassembled request or reply, in bytes.",
    )

    fragment_timeout: float = Field(
        default=limits.DEFAULT_FRAGMENT_TIMEOUT,
        gt=0,
        le=24 * 3600,
        description=(
            "Seconds to wait for the next fragment of a fragmented message "
            "before giving it up."
        ),
    )

    spool_threshold: int = Field(
        default=limits.DEFAULT_SPOOL_THRESHOLD,
        ge=0,
        le=1 << 40,
        description=(
            "Payloads larger than this many bytes are reassembled in a "
            "temporary file instead of memory (requests on a backend, replies "
            "on a caller)."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _require_topic(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("topic") in (None, ""):
            raise ValueError(
                "no topic given: set it with -t/--topic, "
                "main(messaging_config=dict(topic=...)), "
                f"the {ENV_PREFIX}TOPIC environment variable or "
                f"{cls.__name__}(topic=...)"
            )
        return data

    @field_validator("topic", "subscription_name")
    @classmethod
    def _valid_name(cls, value: str | None, info: Any) -> str | None:
        if value is None:
            return value
        return check_name(value, info.field_name.replace("_", " "))

    @field_validator("header", mode="before")
    @classmethod
    def _parse_header(cls, value: Any) -> Any:
        return parse_header(value)

    @model_validator(mode="after")
    def _check_queue_size(self) -> BaseMessagingConfig:
        if (
            self.queue_size is not None
            and self.max_workers is not None
            and self.queue_size < self.max_workers
        ):
            raise ValueError(
                f"queue_size ({self.queue_size}) must be at least max_workers "
                f"({self.max_workers}): raise --queue-size or lower --max-workers"
            )
        return self

    def get_topic_url(self, topic: str, subscription: str | None = None) -> str:
        """Build the WebSocket URL for ``topic``.

        Args:
            topic: the topic to produce to or consume from.
            subscription: the subscription name; given for a consumer URL,
                ``None`` for a producer URL.

        Returns:
            The URL to connect to.

        Raises:
            NotImplementedError: always; subclasses implement it.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not build URLs; use PulsarConfig or "
            "WebsocketURLConfig"
        )

    def get_topic_urls(self, topic: str, subscription: str | None = None) -> list[str]:
        """The URL of ``topic`` on each broker front, in the order given.

        One URL unless the config names several fronts of a broker cluster
        (see :func:`split_broker_urls`); the first is
        :meth:`get_topic_url`'s.

        Raises:
            ConfigurationError: ``topic`` or ``subscription`` is not a valid
                name.
        """
        return [self.get_topic_url(topic, subscription)]

    def _topic_path(self, topic: str, subscription: str | None) -> str:
        path = check_name(topic, "topic")
        if subscription is not None:
            path += "/" + check_name(subscription, "subscription name")
        return path


class PulsarConfig(BaseMessagingConfig):
    """Connect to an Apache Pulsar style WebSocket API.

    URLs look like
    ``ws://{host}:{port}/ws/v2/{producer|consumer}/{persistent|non-persistent}/{tenant}/{namespace}/{topic}[/{subscription}]``.
    The embedded broker and ``dasf-broker-django`` use this layout too.
    Several hosts, comma-separated (``-H a,b``, ``DE_BACKEND_HOST=a,b``),
    name the fronts of a broker cluster on the same port: a client uses the
    first and moves to the next when its front goes away (as with
    ``--broker ws://a:8080,ws://b:8080``).

    Example:
        >>> PulsarConfig(topic="t", port=8080).get_topic_url("t")
        'ws://localhost:8080/ws/v2/producer/non-persistent/public/default/t'
        >>> PulsarConfig(topic="t", host="a,b").broker_urls()
        ['ws://a:8080', 'ws://b:8080']

    Raises:
        ConfigurationError: on construction, for a bad host, port, tenant,
            namespace or any shared option.
    """

    host: str = Field(
        "localhost",
        description=(
            "The host name of the broker; several, comma-separated, for the "
            "fronts of a broker cluster on the same port."
        ),
    )

    port: int = Field(
        8080, ge=1, le=65535, description="The port of the broker at the host."
    )

    persistent: bool = Field(
        False,
        description=(
            "Whether topics are persistent: true/false, or 'persistent' / "
            "'non-persistent'."
        ),
    )

    tenant: str = Field("public", description="The Pulsar tenant.")

    namespace: str = Field("default", description="The Pulsar namespace.")

    @field_validator("host")
    @classmethod
    def _valid_host(cls, value: str) -> str:
        if not isinstance(value, str) or "," not in value:
            return check_host(value)
        hosts: list[str] = []
        for position, entry in enumerate(value.split(","), 1):
            entry = entry.strip()
            if not entry:
                raise ValueError(f"host entry {position} of {short(value)} is empty")
            try:
                check_host(entry)
            except ValueError as exc:
                raise ValueError(f"host entry {position}: {exc}") from None
            if entry in hosts:
                raise ValueError(
                    f"host entry {position} {entry!r} is the same as entry "
                    f"{hosts.index(entry) + 1}"
                )
            hosts.append(entry)
        return ",".join(hosts)

    @field_validator("port", mode="before")
    @classmethod
    def _valid_port(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"the port must be a number, got {value!r}")
        if isinstance(value, str) and not value.strip().isdigit():
            raise ValueError(
                f"the port must be a whole number between 1 and 65535, "
                f"got {short(value)}"
            )
        return value

    @field_validator("persistent", mode="before")
    @classmethod
    def _parse_persistent(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip().lower()
            if text in ("persistent", "true", "yes", "1", "on"):
                return True
            if text in ("non-persistent", "false", "no", "0", "off", ""):
                return False
            raise ValueError(
                f"persistent must be 'persistent', 'non-persistent', true or "
                f"false, got {short(value)}"
            )
        return value

    @field_validator("tenant", "namespace")
    @classmethod
    def _valid_path_name(cls, value: str, info: Any) -> str:
        return check_name(value, info.field_name)

    def get_topic_url(self, topic: str, subscription: str | None = None) -> str:
        """Build the Pulsar WebSocket URL of ``topic``.

        Args:
            topic: the topic name.
            subscription: the subscription for a consumer URL; ``None``
                gives the producer URL.

        Returns:
            ``ws://host:port/ws/v2/{producer|consumer}/...`` as described in
            the class docstring.

        Raises:
            ConfigurationError: ``topic`` or ``subscription`` is not a valid
                name.
        """
        return self.get_topic_urls(topic, subscription)[0]

    def broker_urls(self) -> list[str]:
        """``ws://HOST:PORT`` of each host, in the order given."""
        urls = []
        for host in self.host.split(","):
            if ":" in host and not host.startswith("["):
                host = f"[{host}]"  # a bare IPv6 address
            urls.append(f"ws://{host}:{self.port}")
        return urls

    def get_topic_urls(self, topic: str, subscription: str | None = None) -> list[str]:
        """The Pulsar WebSocket URL of ``topic`` on each host, in order.

        Raises:
            ConfigurationError: ``topic`` or ``subscription`` is not a valid
                name.
        """
        try:
            path = self._topic_path(topic, subscription)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        return [
            pulsar_topic_url(
                base,
                path,
                consumer=subscription is not None,
                persistent=self.persistent,
                tenant=self.tenant,
                namespace=self.namespace,
            )
            for base in self.broker_urls()
        ]


class WebsocketURLConfig(BaseMessagingConfig):
    """Connect to any WebSocket service by appending the topic to a base URL.

    URLs look like ``{url}/{topic}[/{subscription}]`` where ``url`` is
    ``producer_url`` (for producers) or ``consumer_url`` (for consumers),
    each falling back to ``websocket_url``.

    Example:
        >>> config = WebsocketURLConfig(
        ...     topic="t", websocket_url="wss://broker.example.org/ws"
        ... )
        >>> config.get_topic_url("t", "sub")
        'wss://broker.example.org/ws/t/sub'

    Raises:
        ConfigurationError: on construction, when a URL is not ws:// or
            wss://, or no URL is given for producers or consumers.
    """

    websocket_url: str = Field(
        "",
        description=(
            "The fully qualified ws:// or wss:// URL of the websocket; several "
            "fronts of one broker cluster as a comma-separated list."
        ),
    )

    producer_url: str | None = Field(
        None,
        description="An alternative URL for producers; default: websocket_url.",
    )

    consumer_url: str | None = Field(
        None,
        description="An alternative URL for consumers; default: websocket_url.",
    )

    @field_validator("websocket_url", "producer_url", "consumer_url", mode="before")
    @classmethod
    def _valid_url(cls, value: Any, info: Any) -> Any:
        if value is None or value == "" or value == []:
            return None if info.field_name != "websocket_url" else ""
        # several URLs (a list, or comma-separated) are kept comma-separated
        return ",".join(split_broker_urls(value, info.field_name.replace("_", " ")))

    def _bases(self, subscription: str | None) -> list[str]:
        """The base URL of each front for producers (``None``) or consumers."""
        if subscription is not None:
            text = self.consumer_url or self.websocket_url
        else:
            text = self.producer_url or self.websocket_url
        return text.split(",")

    @model_validator(mode="after")
    def _need_urls(self) -> WebsocketURLConfig:
        if not self.websocket_url and not (self.producer_url and self.consumer_url):
            missing = [
                name
                for name in ("producer_url", "consumer_url")
                if not getattr(self, name)
            ]
            raise ValueError(
                "no broker URL for "
                + " and ".join(m.split("_")[0] + "s" for m in missing)
                + ": set --websocket-url (DE_BACKEND_WEBSOCKET_URL), or both "
                "--producer-url and --consumer-url"
            )
        producers, consumers = len(self._bases(None)), len(self._bases("-"))
        if producers != consumers:
            raise ValueError(
                f"{producers} producer URL(s) but {consumers} consumer URL(s): "
                "give one of each per broker front, in the same order"
            )
        return self

    def get_topic_url(self, topic: str, subscription: str | None = None) -> str:
        """Build the URL of ``topic`` below the configured base URL.

        Args:
            topic: the topic name.
            subscription: the subscription for a consumer URL; ``None``
                gives the producer URL.

        Returns:
            ``{url}/{topic}`` or ``{url}/{topic}/{subscription}``.

        Raises:
            ConfigurationError: ``topic`` or ``subscription`` is not a valid
                name.
        """
        return self.get_topic_urls(topic, subscription)[0]

    def get_topic_urls(self, topic: str, subscription: str | None = None) -> list[str]:
        """The URL of ``topic`` below each front's base URL, in order.

        Raises:
            ConfigurationError: ``topic`` or ``subscription`` is not a valid
                name.
        """
        try:
            path = self._topic_path(topic, subscription)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        return [plain_topic_url(base, path) for base in self._bases(subscription)]


#: Options only the plain URL layout has.
URL_OPTIONS = ("websocket_url", "producer_url", "consumer_url")
#: Options only the Pulsar layout has.
PULSAR_OPTIONS = ("host", "port", "persistent", "tenant", "namespace")

MessagingConfigClass = type[PulsarConfig] | type[WebsocketURLConfig]


def environment_options(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The messaging options the ``DE_BACKEND_*`` environment variables set.

    Names are lower-cased without the prefix; empty variables count as not
    set (as the configs read them).
    """
    environ = os.environ if environ is None else environ
    return {
        key[len(ENV_PREFIX) :].lower(): value
        for key, value in environ.items()
        if key.upper().startswith(ENV_PREFIX) and value != ""
    }


def config_class_for(
    *sources: Mapping[str, Any] | type | None,
) -> MessagingConfigClass:
    """Decide the URL layout: :class:`PulsarConfig` or :class:`WebsocketURLConfig`.

    The one place that makes this decision, for ``ModuleConfig``, ``main()``
    and its command line, generated clients and :func:`dasf_geo.connect`.

    Args:
        *sources: where options come from, in falling precedence (e.g. the
            command line, ``main()``'s keywords, :func:`environment_options`).
            The first source that gives an option of one layout decides:
            any of :data:`URL_OPTIONS` means the plain URL layout (so that a
            lone ``producer_url`` is reported as missing its
            ``consumer_url``), else any of :data:`PULSAR_OPTIONS` the Pulsar
            layout. A config class as a source decides for itself; ``None``
            and options that are ``None`` or empty are skipped.

    Returns:
        The config class; :class:`PulsarConfig` when no source decides.
    """
    for source in sources:
        if source is None:
            continue
        if isinstance(source, type):
            if issubclass(source, WebsocketURLConfig):
                return WebsocketURLConfig
            if issubclass(source, PulsarConfig):
                return PulsarConfig
            continue
        if any(source.get(name) not in (None, "") for name in URL_OPTIONS):
            return WebsocketURLConfig
        if any(source.get(name) not in (None, "") for name in PULSAR_OPTIONS):
            return PulsarConfig
    return PulsarConfig
