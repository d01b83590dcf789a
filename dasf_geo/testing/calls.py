"""Calls that tests and benchmarks start in a known state.

:func:`call_stored` starts calls and returns once the broker stored each
request (acked it), so that a test or benchmark can kill the broker while
those requests wait in its store.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["call_stored"]

#: requests sent before waiting for their acks; below the producer's window,
#: so that each goes out at once
BATCH = 8


async def call_stored(client: Any, requests: list[dict]) -> list[asyncio.Task]:
    """Start ``requests`` as calls; return once the broker acked (stored) each.

    ``client`` is an :class:`~dasf_geo.transport.caller.AsyncClient`. The
    calls go out in batches smaller than the producer's window, so that
    each is sent at once; a batch is acked before the next one starts.
    Returns the calls' tasks (their results are the replies' values).
    """
    await client._ensure_producer()  # reopened after a broker restart
    tasks: list[asyncio.Task] = []
    for start in range(0, len(requests), BATCH):
        for request in requests[start : start + BATCH]:
            tasks.append(asyncio.create_task(client.call(request)))
        await asyncio.sleep(0)  # each new task sends its request now
        while client._producer._pending:
            await asyncio.sleep(0.005)
    return tasks
