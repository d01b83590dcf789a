"""Sizes and timeouts with one name each, and their defaults.

Every default size and timeout that more than one module needs is defined
here once; the messaging configs (:mod:`dasf_geo.config.messaging`) use them
as their defaults and the transport falls back to them for a settings object
that leaves an option unset. Where users already know an option by
demessaging's name, that name stays the option's name; the table says what
each concept is called where.

============================  ==========================  =====================
concept                       constant                    where users set it
============================  ==========================  =====================
base64 characters per         :data:`DEFAULT_MAX_PAYLOAD   ``max_payload_size``
message (fragment size)       _SIZE`                      (config, demessaging),
                                                          ``fragment_size``
                                                          (per call, options)
largest request or reply      :data:`MAX_REQUEST_SIZE`    ``max_request_size``
(bytes, reassembled)                                      (config), ``max_size``
                                                          (per call, options)
reassembly on disk above      :data:`DEFAULT_SPOOL_       ``spool_threshold``
                              THRESHOLD`                  (config)
open a binary value lazily    :data:`LAZY_THRESHOLD`      -
above
============================  ==========================  =====================
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_CONNECTION_TIMEOUT",
    "DEFAULT_FRAGMENT_TIMEOUT",
    "DEFAULT_MAX_PAYLOAD_SIZE",
    "DEFAULT_PRODUCER_KEEP_ALIVE",
    "DEFAULT_SPOOL_THRESHOLD",
    "LAZY_THRESHOLD",
    "MAX_REQUEST_SIZE",
]

#: The reference backends cut payloads above this many base64 characters
#: (the messaging configs' ``max_payload_size``).
DEFAULT_MAX_PAYLOAD_SIZE = 512_000

#: Largest reassembled request or reply, in bytes (the messaging configs'
#: ``max_request_size``); also the largest request file the command line
#: reads and the largest HTTP body the gateway accepts by default.
MAX_REQUEST_SIZE = 1 << 30

#: Payloads larger than this many bytes are reassembled in a temporary file
#: instead of memory (the messaging configs' ``spool_threshold``).
DEFAULT_SPOOL_THRESHOLD = 32 * 1024 * 1024

#: Dataset/DataArray values (binary parts of a request, binary replies)
#: larger than this many bytes, received into a temporary file, are opened
#: lazily instead of loaded.
LAZY_THRESHOLD = 256 * 1024 * 1024

#: Seconds to wait for the next fragment of a fragmented message.
DEFAULT_FRAGMENT_TIMEOUT = 60.0

#: Seconds an idle producer connection stays open.
DEFAULT_PRODUCER_KEEP_ALIVE = 120

#: Seconds granted to a producer to connect to the broker.
DEFAULT_CONNECTION_TIMEOUT = 30
