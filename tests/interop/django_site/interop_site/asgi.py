"""ASGI entry point: HTTP via Django, WebSockets via dasf-broker-django.

The token middleware of dasf-broker-django reads ``Authorization: Token
<key>`` (or ``Bearer``) headers; connections without one are anonymous.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "interop_site.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from dasf_broker.routing import websocket_urlpatterns  # noqa: E402
from dasf_broker.token_auth_middleware import TokenAuthMiddlewareStack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": TokenAuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
