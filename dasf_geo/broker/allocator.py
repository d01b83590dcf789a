"""Keep freed payload memory in a broker process (glibc's malloc tuning).

A broker moves half-megabyte fragments: every one is a fresh ``bytes`` of
its delivery frame, and on a cluster front a fresh buffer its NATS message
is read into (:mod:`dasf_geo.broker.nats_wire`). glibc serves blocks that
large with ``mmap`` below its dynamic threshold and gives freed memory at
the top of the heap back to the system once more than twice that threshold
is free (``M_TRIM_THRESHOLD``); so the next fragment's memory is mapped
afresh and every one of its pages is faulted in and zeroed by the kernel.
Measured on a front receiving a 100 MB Dataset reply, page faults and the
zeroing were a third of its CPU time (0.24 s of CPU per transfer; 0.14 s
with the settings below).

:func:`tune_allocator` raises the two thresholds for the broker process
(``dasf-geo broker``, embedded or cluster front): blocks up to
:data:`MMAP_THRESHOLD` come from the heap, and up to
:data:`TRIM_THRESHOLD` of free heap stays with the process for the next
fragments. The broker's own limits (``max_total_bytes``) bound what it
holds; the cost is that much address space kept after a burst. Elsewhere
(musl, macOS, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "tune_allocator"]

logger = logging.getLogger(__name__)

#: blocks up to this size come from the heap, not from their own mapping
MMAP_THRESHOLD = 4 * 1024 * 1024
#: free memory at the top of the heap kept for later blocks
TRIM_THRESHOLD = 64 * 1024 * 1024
# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds for this process.

    Returns:
        True if glibc took both settings; False elsewhere (nothing done).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        version = libc.gnu_get_libc_version
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc
    version.restype = ctypes.c_char_p
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    logger.debug(
        "glibc %s malloc thresholds %s",
        version().decode(),
        "raised" if done else "kept",
    )
    return done
