"""The dynamic client's old import path.

:func:`~dasf_geo.service.dynamic.connect`, :class:`~dasf_geo.service.dynamic.Service`
and the rest of the dynamic client build calls from a backend's API info
and send them with the transport's clients; they live in the service layer,
:mod:`dasf_geo.service.dynamic`. Code written against this path still
imports them from here.
"""

from __future__ import annotations

from dasf_geo._moved import moved_names

__all__: list[str] = []

#: names that moved to the service layer, still importable from here
MOVED = dict.fromkeys(
    (
        "AsyncService",
        "RemoteParameters",
        "Service",
        "aconnect",
        "connect",
        "decode_value",
        "encode_request",
        "encode_value",
        "messaging_config",
    ),
    "dasf_geo.service.dynamic",
)
__getattr__ = moved_names(__name__, MOVED)
