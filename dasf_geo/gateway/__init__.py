"""Layer 7, gateway: every DASF service on a broker, over HTTP.

- :func:`create_app` builds the ASGI application (Starlette) for
  :class:`GatewaySettings`;
- :class:`GatewayServer` runs it on uvicorn, in the current thread or in a
  background thread (``dasf-geo serve`` starts one beside its broker).

The gateway is a broker client like any caller: backends never open an
inbound port. See docs/http.md for the routes.
"""

from dasf_geo.gateway.app import GatewayState, create_app
from dasf_geo.gateway.server import GatewayServer, start_embedded
from dasf_geo.gateway.settings import DEFAULT_BODY_LIMIT, GatewaySettings

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "GatewayServer",
    "GatewaySettings",
    "GatewayState",
    "create_app",
    "start_embedded",
]
