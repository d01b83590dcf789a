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
:mod:`dasf_geo.transport.caller` (the asyncio client) and
:mod:`dasf_geo.transport.blocking` (the blocking client and the shared
clients of the process).
"""

from __future__ import annotations

from dasf_geo.protocol import limits
from dasf_geo.transport.blocking import (  # noqa: F401  (re-exported)
    PROBE_TIMEOUT,
    Client,
    _background,
    _client_key,
    _clients,
    _clients_lock,
    _has_xarray_argument,
    _loop_lock,
    _LoopThread,
    _part_writer,
    _validate_result,
    binary_accept,
    close_clients,
    get_client,
    send_request,
)
from dasf_geo.transport.caller import (  # noqa: F401  (re-exported)
    _ERROR,
    _PROGRESS,
    _RESPONSE,
    _SUCCESS,
    DEFAULT_TIMEOUT,
    RECONNECT_FIRST_DELAY,
    RECONNECT_MAX_DELAY,
    RESPONSE_SUBSCRIPTION,
    AsyncClient,
    ProgressCallback,
    T,
    _json_property,
    _Pending,
    _request_payload,
    _ThreadWaiter,
    _upload_progress,
    describe_request,
    logger,
)
from dasf_geo.transport.replies import (  # noqa: F401  (re-exported)
    BinaryValue,
    Reply,
    _closer,
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
    "send_request",
]

#: Binary replies larger than this many bytes are opened lazily from their
#: temporary file instead of being loaded (see :meth:`BinaryValue.decode`,
#: which reads it here at each call); one value with the data layer's.
LAZY_THRESHOLD = limits.LAZY_THRESHOLD
