"""Run the gateway on uvicorn: in this thread, or in a background thread.

``dasf-geo gateway`` runs :meth:`GatewayServer.run` (Ctrl-C stops it);
``dasf-geo serve`` starts :meth:`GatewayServer.start` beside its broker
and stops it on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from typing import Any

from dasf_geo.exceptions import ConfigurationError
from dasf_geo.gateway.settings import GatewaySettings

__all__ = ["GatewayServer", "free_port_after"]


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port_after(port: int, host: str = "127.0.0.1", attempts: int = 50) -> int:
    """The first free port above ``port`` on ``host``.

    Raises:
        ConfigurationError: none of the next ``attempts`` ports is free.
    """
    for candidate in range(port + 1, min(port + 1 + attempts, 65536)):
        if _port_free(host, candidate):
            return candidate
    raise ConfigurationError(
        f"no free port for the HTTP gateway among {port + 1}-{port + attempts} on "
        f"{host}; give one with --http-port"
    )


def _http_impl() -> str:
    """uvicorn's HTTP parser: httptools (C) when installed, else h11."""
    import importlib.util

    return "httptools" if importlib.util.find_spec("httptools") else "h11"


class GatewayServer:
    """The gateway application on a uvicorn server.

    Args:
        settings: the gateway's settings.
        host: the address to listen on.
        port: the port (0: any free one).
        log_level: uvicorn's log level.
    """

    def __init__(
        self,
        settings: GatewaySettings,
        host: str = "127.0.0.1",
        port: int = 8000,
        log_level: str = "warning",
    ) -> None:
        import uvicorn

        from dasf_geo.gateway.app import create_app

        self.settings = settings
        self.host = host
        self.app = create_app(settings)
        self.config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level=log_level,
            lifespan="on",
            http=_http_impl(),
            access_log=False,
            ws="websockets-sansio",
            ws_max_size=64 * 1024 * 1024,
            timeout_graceful_shutdown=5,
            server_header=False,
        )
        self.server = uvicorn.Server(self.config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The port listened on (the real one once started)."""
        servers = getattr(self.server, "servers", None) or []
        for server in servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self.config.port)

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def run(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C, SIGTERM)."""
        self.server.run()

    def start(self, timeout: float = 30.0) -> GatewayServer:
        """Serve in a background thread; return once it listens.

        Raises:
            ConfigurationError: it did not start (the port is taken…).
        """

        def target() -> None:
            try:
                asyncio.run(self.server.serve())
            except BaseException as exc:  # reported by start()
                self._error = exc

        self._thread = threading.Thread(
            target=target, name="dasf-geo-gateway", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConfigurationError(
                    f"the HTTP gateway did not start on {self.host}:{self.config.port}"
                    + (f": {self._error}" if self._error else "")
                )
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop a server started with :meth:`start`."""
        self.server.should_exit = True
        if self._thread is not None:
            with contextlib.suppress(Exception):
                self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_embedded(broker_url: str, port: int | None = None) -> GatewayServer:
    """Start a gateway beside an embedded broker, on 127.0.0.1.

    The entry point (group ``dasf_geo.embedded``) through which a service
    started with ``service.run()`` and no broker gets its gateway, as
    ``dasf-geo serve`` does. ``port``: default the next free one after the
    broker's.

    Raises:
        ConfigurationError: no free port, or the gateway did not start.
    """
    from urllib.parse import urlsplit

    settings = GatewaySettings(broker=broker_url)
    if port is None:
        port = free_port_after(urlsplit(broker_url).port or 8000)
    server = GatewayServer(settings, "127.0.0.1", port).start()
    print(f"HTTP gateway on {server.url} (docs: {server.url}/docs)", flush=True)
    return server
