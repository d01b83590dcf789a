"""What a gateway needs to know: where the broker is, what to serve, limits.

:class:`GatewaySettings` is a plain dataclass (the command line and
``dasf-geo serve`` fill it in); :meth:`GatewaySettings.messaging_config`
builds the messaging config of a caller, with the gateway's own headers or
those a request forwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dasf_geo.exceptions import ConfigurationError, ProtocolError
from dasf_geo.protocol.limits import MAX_REQUEST_SIZE
from dasf_geo.protocol.names import validate_topic_part

__all__ = ["DEFAULT_BODY_LIMIT", "GatewaySettings", "valid_topic"]

#: Request bodies above this many bytes are refused (the DASF default
#: ``max_request_size``: 1 GiB).
DEFAULT_BODY_LIMIT = MAX_REQUEST_SIZE


def valid_topic(topic: str) -> bool:
    """True if ``topic`` is a name a broker accepts (no ``/``, ``..``, spaces).

    The broker's own rule (:mod:`dasf_geo.protocol.names`), which the
    messaging configs share; ``.`` and ``..`` can never be a name.
    """
    try:
        validate_topic_part(topic)
    except ProtocolError:
        return False
    return True


@dataclass
class GatewaySettings:
    """The configuration of one gateway.

    Attributes:
        broker: ``ws://HOST:PORT`` of a Pulsar-layout broker (the embedded
            one, ``dasf-geo broker``, Apache Pulsar).
        websocket_url: base URL of a plain-layout broker (dasf-broker-django);
            excludes ``broker``.
        header: headers of the gateway's own broker handshakes (e.g. its
            ``Authorization``); a request's own ``Authorization`` replaces it.
        topics: topics to serve; empty: every topic the broker lists with a
            backend consumer (a broker without ``GET /topics`` serves only
            the named ones).
        messaging: further messaging config fields (``tenant``,
            ``persistent``, ``max_payload_size``…).
        timeout: seconds to wait for a reply (a request's ``X-Dasf-Timeout``
            header may ask for less or more, up to ``max_timeout``).
        max_timeout: the longest wait a request may ask for.
        body_limit: the largest request body in bytes (413 above).
        cors_origins: origins allowed by CORS (empty: no CORS headers).
        jobs_db: the SQLite file of OGC API jobs (default: a file in the
            system's temporary directory, one per gateway port).
        job_retention: the most finished jobs kept (oldest dropped first).
        refresh: seconds after which a service's API info is asked again.
        discovery_timeout: seconds to wait for the API info of a topic the
            gateway has not seen answer yet, before answering 404. With a
            broker that lists its topics (``GET /topics``: the embedded one,
            ``dasf-geo broker``) a topic without a consumer is a 404 at once.
        forward_auth: pass the caller's ``Authorization`` header (or
            ``token`` query parameter) on to the broker handshake.
        static_dir: a folder served at ``/`` (default: the dashboard when
            ``dasf_geo.web`` is installed).
    """

    broker: str | None = None
    websocket_url: str | None = None
    header: dict[str, str] = field(default_factory=dict)
    topics: list[str] = field(default_factory=list)
    messaging: dict[str, Any] = field(default_factory=dict)
    timeout: float = 600.0
    max_timeout: float = 3600.0
    body_limit: int = DEFAULT_BODY_LIMIT
    cors_origins: list[str] = field(default_factory=list)
    jobs_db: Path | None = None
    job_retention: int = 1000
    refresh: float = 5.0
    discovery_timeout: float = 9.0
    forward_auth: bool = True
    static_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.broker and self.websocket_url:
            raise ConfigurationError(
                "give either broker='ws://HOST:PORT' or websocket_url=…, not both"
            )
        if not self.broker and not self.websocket_url:
            raise ConfigurationError(
                "the gateway needs a broker: --broker ws://HOST:PORT or "
                "--websocket-url ws://HOST/PATH"
            )
        for topic in self.topics:
            if not valid_topic(topic):
                raise ConfigurationError(
                    f"invalid topic {topic!r}: use only letters, digits and _ - = : . %"
                )
        if not self.discovery_timeout > 0:
            raise ConfigurationError(
                f"the discovery timeout must be > 0 s, got {self.discovery_timeout}"
            )
        if self.body_limit <= 0:
            raise ConfigurationError(
                f"the body limit must be > 0 bytes, got {self.body_limit}"
            )
        # fail now, not on the first request
        self.messaging_config("probe")

    def messaging_config(
        self, topic: str, header: Mapping[str, str] | None = None
    ) -> Any:
        """The messaging config of a caller of ``topic``.

        Args:
            topic: the backend's topic.
            header: handshake headers replacing the gateway's own (None:
                the gateway's).

        Raises:
            ConfigurationError: the broker options do not make a config.
        """
        from dasf_geo.service.dynamic import messaging_config

        return messaging_config(
            topic,
            self.broker,
            websocket_url=self.websocket_url,
            header=dict(self.header if header is None else header),
            **self.messaging,
        )

    @property
    def broker_http_url(self) -> str | None:
        """``http://HOST:PORT`` of a Pulsar-layout broker (for ``GET /topics``)."""
        if not self.broker:
            return None
        # the first front of a broker cluster given as a comma-separated list
        parts = urlsplit(self.broker.split(",")[0].strip())
        scheme = "https" if parts.scheme == "wss" else "http"
        return f"{scheme}://{parts.netloc}"

    @property
    def broker_ws_root(self) -> str:
        """``ws://HOST:PORT`` under which the broker's ``/ws/…`` routes are."""
        url = self.broker or self.websocket_url or ""
        parts = urlsplit(url.split(",")[0].strip())  # the first front
        return f"{parts.scheme}://{parts.netloc}"
