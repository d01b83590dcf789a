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
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from dasf_geo.exceptions import ConfigurationError
from dasf_geo.protocol.constants import DEFAULT_MAX_PAYLOAD_SIZE

__all__ = [
    "ENV_PREFIX",
    "MAX_HEADER_SIZE",
    "MAX_PAYLOAD_SIZE_LIMIT",
    "BaseMessagingConfig",
    "PulsarConfig",
    "WebsocketURLConfig",
    "format_validation_error",
    "split_broker_urls",
]

#: Prefix of the environment variables read by the messaging configs.
ENV_PREFIX = "DE_BACKEND_"

#: Upper bound for ``max_payload_size``: far above any broker's frame limit
#: (Pulsar's ``webSocketMaxTextFrameSize`` defaults to 1 MiB), low enough to
#: catch a typo such as an extra zero group before a message is ever sent.
MAX_PAYLOAD_SIZE_LIMIT = 64 * 1024 * 1024

#: Upper bound on the JSON text of ``header`` (characters).
MAX_HEADER_SIZE = 16 * 1024

# Pulsar topic, tenant, namespace and subscription names: the characters
# Pulsar's NamedEntity accepts, plus '%' for URL-encoded names.
_NAME_RE = re.compile(r"[A-Za-z0-9_\-=:.%]+")
_NAME_MAX = 255
# RFC 7230 "token" for header field names.
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A DNS host name (labels of letters, digits and hyphens).
_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
_URL_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<rest>.*)", re.S)


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (hostile input stays readable)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_name(value: str, what: str) -> str:
    """Validate a topic/tenant/namespace/subscription name.

    Raises:
        ValueError: the name is empty, too long or has characters Pulsar and
            URLs do not accept.
    """
    if not isinstance(value, str):
        raise ValueError(f"the {what} must be a string, got {_short(value)}")
    if not value:
        raise ValueError(f"the {what} must not be empty")
    if len(value) > _NAME_MAX:
        raise ValueError(
            f"the {what} is {len(value)} characters long; use at most {_NAME_MAX}"
        )
    if not _NAME_RE.fullmatch(value):
        raise ValueError(
            f"the {what} {_short(value)} contains characters that are not "
            "allowed; use only letters, digits and _ - = : . %"
        )
    return value


def format_validation_error(
    exc: ValidationError,
    title: str,
    option_names: dict[str, str] | None = None,
    env_prefix: str | None = None,
    known_fields: Iterable[str] | None = None,
) -> str:
    """Render a pydantic ``ValidationError`` as one readable message.

    Each problem becomes one line naming the option (and, when given, the
    command-line option and environment variable that set it), the problem
    and the offending value (shortened to 80 characters).

    Args:
        exc: the validation error.
        title: what was being configured, e.g. ``"PulsarConfig"``.
        option_names: maps field names to how the user spells them, e.g.
            ``{"port": "-p/--port"}``.
        env_prefix: the environment variable prefix, e.g. ``"DE_BACKEND_"``.
        known_fields: the valid field names; an unknown name is reported
            with this list, and only known names get an environment variable.

    Returns:
        The message, starting with ``"invalid {title}: "``.
    """
    known = sorted(known_fields) if known_fields is not None else None
    lines = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error.get("loc", ())]
        field = loc[0] if loc else ""
        name = ".".join(loc) if loc else "value"
        if error.get("type") == "extra_forbidden":
            line = f"unknown option {_short(name)}"
            if known is not None:
                line += "; valid options are " + ", ".join(known)
            lines.append(line)
            continue
        spelled = []
        if option_names and field in option_names:
            spelled.append(option_names[field])
        if env_prefix and field and (known is None or field in known):
            spelled.append(f"environment variable {env_prefix}{field.upper()}")
        label = name + (f" ({', '.join(spelled)})" if spelled else "")
        msg = str(error.get("msg", "invalid value"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        elif msg.startswith("Assertion failed, "):
            msg = msg[len("Assertion failed, ") :]
        line = f"{label}: {msg}" if field else msg
        if error.get("type") not in ("value_error", "missing") and "input" in error:
            line += f" (got {_short(error['input'])})"
        lines.append(line)
    if len(lines) == 1:
        return f"invalid {title}: {lines[0]}"
    return f"invalid {title}:\n" + "\n".join(f"- {line}" for line in lines)


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
        default=DEFAULT_MAX_PAYLOAD_SIZE,
        ge=4,
        le=MAX_PAYLOAD_SIZE_LIMIT,
        description=(
            "Largest base64 payload per message, in characters; bigger "
            "payloads are sent in fragments. Must stay below the broker's "
            "frame limit (Pulsar: webSocketMaxTextFrameSize)."
        ),
    )

    producer_keep_alive: int = Field(
        default=120,
        ge=0,
        le=7 * 24 * 3600,
        description=(
            "Seconds an idle producer connection stays open; 0 closes it "
            "right after each acknowledged message."
        ),
    )

    producer_connection_timeout: int = Field(
        default=30,
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
        default=1 << 30,
        ge=1,
        le=1 << 40,
        description="Largest reassembled request or reply, in bytes.",
    )

    fragment_timeout: float = Field(
        default=60.0,
        gt=0,
        le=24 * 3600,
        description=(
            "Seconds to wait for the next fragment of a fragmented message "
            "before giving it up."
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
        return _check_name(value, info.field_name.replace("_", " "))

    @field_validator("header", mode="before")
    @classmethod
    def _parse_header(cls, value: Any) -> Any:
        if value is None or value == "":
            return {}
        if isinstance(value, (str, bytes, bytearray)):
            if len(value) > MAX_HEADER_SIZE:
                raise ValueError(
                    f"the header is {len(value)} characters long; "
                    f"use at most {MAX_HEADER_SIZE}"
                )
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValueError(
                    "the header must be a JSON object such as "
                    '\'{"authorization": "Token ..."}\', '
                    f"but it is not valid JSON ({exc})"
                ) from None
        if not isinstance(value, dict):
            raise ValueError(
                "the header must be a JSON object mapping names to strings, "
                f"got {type(value).__name__} {_short(value)}"
            )
        header: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not _HEADER_NAME_RE.fullmatch(key):
                raise ValueError(
                    f"the header name {_short(key)} is not a valid HTTP header "
                    "name; use letters, digits and - _ only"
                )
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise ValueError(
                    f"the header value of {key!r} must be a string, "
                    f"got {type(item).__name__} {_short(item)}"
                )
            text = str(item)
            if any(ch in text for ch in "\r\n\x00"):
                raise ValueError(
                    f"the header value of {key!r} contains a line break or NUL "
                    "character, which HTTP headers do not allow"
                )
            header[key] = text
        if len(json.dumps(header)) > MAX_HEADER_SIZE:
            raise ValueError(
                f"the header is longer than {MAX_HEADER_SIZE} characters as JSON"
            )
        return header

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
        path = _check_name(topic, "topic")
        if subscription is not None:
            path += "/" + _check_name(subscription, "subscription name")
        return path


def _url_error(field: str, value: str, problem: str) -> ValueError:
    return ValueError(
        f"the {field} {_short(value)} {problem}; expected a URL such as "
        "'ws://localhost:8080/ws/v2/consumer/non-persistent/public/default'"
    )


def _check_host(value: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"the host must be a string, got {_short(value)}")
    if not value:
        raise ValueError("the host must not be empty; use e.g. 'localhost'")
    if "://" in value or "/" in value:
        raise ValueError(
            f"the host {_short(value)} must be a host name or IP address "
            "without scheme, port or path (e.g. 'localhost'); to give a full "
            "URL use --websocket-url instead"
        )
    candidate = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        ipaddress.ip_address(candidate)
        return value
    except ValueError:
        pass
    if not _HOSTNAME_RE.fullmatch(value):
        raise ValueError(
            f"the host {_short(value)} is not a valid host name or IP address "
            "(use e.g. 'localhost', 'broker.example.org' or '127.0.0.1'; "
            "give the port with -p/--port)"
        )
    return value


def _check_ws_url(value: str, field: str) -> str:
    match = _URL_RE.fullmatch(value)
    if not match:
        raise _url_error(field, value, "is not a URL")
    if match["scheme"].lower() not in ("ws", "wss"):
        raise _url_error(
            field,
            value,
            f"uses the scheme {match['scheme']!r}; only ws:// and wss:// work",
        )
    rest = match["rest"]
    if any(ch.isspace() or ord(ch) < 32 for ch in rest):
        raise _url_error(field, value, "contains white space or control characters")
    if "?" in rest or "#" in rest:
        raise _url_error(
            field,
            value,
            "has a query or fragment; the topic is appended to the URL's path, "
            "so pass tokens with --header instead",
        )
    parts = urlsplit(value)
    if "@" in parts.netloc:
        raise _url_error(
            field, value, "contains credentials; pass them with --header instead"
        )
    try:
        port = parts.port
    except ValueError:
        raise _url_error(field, value, "has an invalid port") from None
    if port == 0:
        raise _url_error(field, value, "has an invalid port")
    host = parts.hostname
    if not host:
        raise _url_error(field, value, "has no host")
    try:
        _check_host(host)
    except ValueError:
        raise _url_error(field, value, f"has an invalid host {host!r}") from None
    return value.rstrip("/")


def split_broker_urls(value: Any, option: str = "--broker") -> list[str]:
    """The broker URLs in ``value``: one URL, a comma-separated list, or a list.

    Several URLs name the fronts of one broker cluster (see
    :mod:`dasf_geo.transport.failover`): a client uses the first and moves
    to the next when its front goes away. Each entry is checked as a
    ``ws://`` or ``wss://`` URL; a trailing ``/`` is dropped.

    Example:
        >>> split_broker_urls("ws://a:8080, ws://b:8080/")
        ['ws://a:8080', 'ws://b:8080']

    Args:
        value: a string (entries separated by ``,``) or a list of strings.
        option: how the user spelled the option, for the messages.

    Raises:
        ValueError: no URL at all, an empty entry (``a,,b``), an entry that
            is not a ``ws://``/``wss://`` URL, or one given twice; the
            message names the option, the entry and its position.
    """
    if isinstance(value, str):
        entries = value.split(",")
    elif isinstance(value, (list, tuple)):
        entries = list(value)
    else:
        raise ValueError(
            f"{option} must be a URL, a comma-separated list of URLs or a list, "
            f"got {type(value).__name__} {_short(value)}"
        )
    if not entries or entries == [""]:
        raise ValueError(f"{option} names no broker URL")
    urls: list[str] = []
    seen: dict[tuple[str, str, int | None, str], int] = {}
    for position, entry in enumerate(entries, 1):
        label = f"{option} entry {position}" if len(entries) > 1 else option
        if not isinstance(entry, str):
            raise ValueError(f"{label} must be a string, got {_short(entry)}")
        entry = entry.strip()
        if not entry:
            raise ValueError(
                f"{label} is empty (in {_short(value)}); separate the URLs with "
                "single commas"
            )
        url = _check_ws_url(entry, label)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        key = (
            scheme,
            (parts.hostname or "").lower(),
            parts.port or (443 if scheme == "wss" else 80),
            parts.path.rstrip("/"),
        )
        if key in seen:
            raise ValueError(
                f"{label} {_short(entry)} is the same broker as entry "
                f"{seen[key]}; give each front once"
            )
        seen[key] = position
        urls.append(url)
    return urls


class PulsarConfig(BaseMessagingConfig):
    """Connect to an Apache Pulsar style WebSocket API.

    URLs look like
    ``ws://{host}:{port}/ws/v2/{producer|consumer}/{persistent|non-persistent}/{tenant}/{namespace}/{topic}[/{subscription}]``.
    The embedded broker and ``dasf-broker-django`` use this layout too.

    Example:
        >>> PulsarConfig(topic="t", port=8080).get_topic_url("t")
        'ws://localhost:8080/ws/v2/producer/non-persistent/public/default/t'

    Raises:
        ConfigurationError: on construction, for a bad host, port, tenant,
            namespace or any shared option.
    """

    host: str = Field("localhost", description="The host name of the broker.")

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
        return _check_host(value)

    @field_validator("port", mode="before")
    @classmethod
    def _valid_port(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"the port must be a number, got {value!r}")
        if isinstance(value, str) and not value.strip().isdigit():
            raise ValueError(
                f"the port must be a whole number between 1 and 65535, "
                f"got {_short(value)}"
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
                f"false, got {_short(value)}"
            )
        return value

    @field_validator("tenant", "namespace")
    @classmethod
    def _valid_path_name(cls, value: str, info: Any) -> str:
        return _check_name(value, info.field_name)

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
        try:
            path = self._topic_path(topic, subscription)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        kind = "consumer" if subscription is not None else "producer"
        persistence = "persistent" if self.persistent else "non-persistent"
        host = self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # a bare IPv6 address
        return (
            f"ws://{host}:{self.port}/ws/v2/{kind}/{persistence}/"
            f"{self.tenant}/{self.namespace}/{path}"
        )


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
        return [f"{base.rstrip('/')}/{path}" for base in self._bases(subscription)]
