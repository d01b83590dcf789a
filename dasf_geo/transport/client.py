"""The caller's side: send DASF requests to a backend topic and wait for replies.

One :class:`AsyncClient` holds two connections: a producer on the backend's
topic and a consumer on a private response topic (128 random bits, so
nobody can guess it). Any number of requests may be in flight at once; each
carries its own ``requestContext`` and replies are matched by it, so they
can never be mixed up. Fragmented replies are reassembled; fragmented
requests are sent when a request exceeds ``max_payload_size``.

:class:`Client` is the blocking counterpart: it runs the asyncio client on
one background event loop shared by all blocking clients of the process.

This module is the caller's public face; the code lives in
:mod:`dasf_geo.transport.replies` (replies and remote errors),
:mod:`dasf_geo.transport.caller` (the asyncio client),
:mod:`dasf_geo.transport.matching` (request matching, sans-I/O) and
:mod:`dasf_geo.transport.blocking` (the blocking client and the shared
clients of the process). ``send_request`` (the calls of a backend module's
model and of generated stubs) knows the backend's models and lives in
:mod:`dasf_geo.service.client`; its old import path here still works.
"""

from __future__ import annotations

from dasf_geo._moved import moved_names
from dasf_geo.protocol import limits
from dasf_geo.transport.blocking import (  # noqa: F401  (re-exported)
    Client,
    T,
    _abandon,
    _background,
    _client_key,
    _clients,
    _clients_lock,
    _loop_lock,
    _LoopThread,
    _start_for_thread,
    _ThreadWaiter,
    close_clients,
    get_client,
)
from dasf_geo.transport.caller import (  # noqa: F401  (re-exported)
    DEFAULT_TIMEOUT,
    RECONNECT_FIRST_DELAY,
    RECONNECT_MAX_DELAY,
    RESPONSE_SUBSCRIPTION,
    AsyncClient,
    logger,
)
from dasf_geo.transport.matching import (  # noqa: F401  (re-exported)
    _ERROR,
    _PROGRESS,
    _RESPONSE,
    _SUCCESS,
    ProgressCallback,
    ReplyMatcher,
    _Pending,
    _request_payload,
    _upload_progress,
    call_properties,
    describe_request,
)
from dasf_geo.transport.replies import (  # noqa: F401  (re-exported)
    BinaryValue,
    Reply,
    _closer,
    _json_property,
    raise_for_status,
    warn_findings,
)

__all__ = [
    "AsyncClient",
    "BinaryValue",
    "Client",
    "Reply",
    "close_clients",
    "get_client",
    "raise_for_status",
]

#: names that moved to the service layer, still importable from here
MOVED = dict.fromkeys(
    ("PROBE_TIMEOUT", "binary_accept", "send_request"), "dasf_geo.service.client"
)
__getattr__ = moved_names(__name__, MOVED)

#: Binary replies larger than this many bytes are opened lazily from their
#: temporary file instead of being loaded (see :meth:`BinaryValue.decode`,
#: which reads it here at each call); one value with the data layer's.
LAZY_THRESHOLD = limits.LAZY_THRESHOLD
