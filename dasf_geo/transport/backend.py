"""The backend's side of the transport: the listener and its handler contract.

This module re-exports the names of :mod:`dasf_geo.transport.listener` (how
a topic is consumed, how many requests run at once, when requests are
acknowledged, how errors and multipart requests are answered) and of
:mod:`dasf_geo.transport.handler` (the handler contract and the error
replies), and holds :data:`REPLY_CONNECT_DELAYS`.

Serving a backend module -- :func:`~dasf_geo.service.handler.listen`,
:class:`~dasf_geo.service.handler.BackgroundListener`,
:func:`~dasf_geo.service.handler.test_connect` and
:class:`~dasf_geo.service.handler.ModuleHandler` -- knows the backend's
models and lives in the service layer; their old import paths here still
work.
"""

from __future__ import annotations

import logging

from dasf_geo._moved import moved_names
from dasf_geo.exceptions import RequestError  # noqa: F401  (re-exported)
from dasf_geo.transport.answers import (  # noqa: F401  (re-exported)
    _is_json_error,
    _too_large,
)
from dasf_geo.transport.connection import (  # noqa: F401  (re-exported)
    AsyncConsumer,
    AsyncProducer,
    redact_url,
)
from dasf_geo.transport.dispatch import (  # noqa: F401  (re-exported)
    _ANSWERS,
    _FRAGMENT,
    DEFAULT_MAX_INCOMPLETE,
    DEFAULT_MAX_INCOMPLETE_BYTES,
    REMEMBER_FAILED,
    _Incoming,
    _parts_over,
)
from dasf_geo.transport.handler import (  # noqa: F401  (re-exported)
    MAX_ERRORS,
    MAX_INPUT_CHARS,
    FunctionReply,
    RequestHandler,
    _json_safe,
    _over_limit,
    _RequestError,
    _RequestTooLarge,
    default_subscription,
    parse_accept,
    structured_errors,
)
from dasf_geo.transport.listener import (  # noqa: F401  (re-exported)
    MAX_REPLY_REDELIVERIES,
    RECONNECT_FIRST_DELAY,
    RECONNECT_MAX_DELAY,
    Listener,
    on_listening,
)

__all__ = [
    "FunctionReply",
    "Listener",
    "RequestHandler",
    "default_subscription",
    "on_listening",
]

#: names that moved to the service layer, still importable from here
MOVED = dict.fromkeys(
    (
        "BackgroundListener",
        "ModuleHandler",
        "attach_reporters",
        "binary_reply",
        "listen",
        "test_connect",
        "with_findings",
    ),
    "dasf_geo.service.handler",
)
__getattr__ = moved_names(__name__, MOVED)

logger = logging.getLogger(__name__)

#: Seconds to wait before each further attempt to open a reply's producer
#: (read here by :class:`~dasf_geo.transport.listener.Listener` at each reply).
REPLY_CONNECT_DELAYS = (0.1, 0.5)
