"""One streamed call: send a request, hand back its reply as a stream.

:func:`open_stream` is the body of :meth:`AsyncClient.request_stream
<dasf_geo.transport.caller.AsyncClient.request_stream>`: it registers a
:class:`~dasf_geo.transport.streamed.ReplyStream` with the client's reply
matcher instead of a future, sends the request (at once, or a
:class:`~dasf_geo.transport.streamed_upload.StreamedUpload` while its bytes
arrive), and returns once the reply's first message came. What the stream
does with the reply's fragments is :mod:`dasf_geo.transport.streamed`'s job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from dasf_geo.exceptions import RequestTimeout
from dasf_geo.protocol.constants import MessageType
from dasf_geo.transport.streamed import DEFAULT_MEMORY_LIMIT, ReplyStream
from dasf_geo.transport.streamed_upload import StreamedUpload, send_streamed

__all__ = ["open_stream"]


async def open_stream(
    client: Any,
    payload: bytes | bytearray | memoryview | StreamedUpload | Any,
    *,
    timeout: float | None = None,
    what: str | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    accept: Any = None,
    options: Any = None,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
) -> ReplyStream:
    """Send one request with ``client`` and return its reply as a stream.

    The body of :meth:`AsyncClient.request_stream
    <dasf_geo.transport.caller.AsyncClient.request_stream>` (see there).
    """
    from dasf_geo.protocol.limits import DEFAULT_FRAGMENT_TIMEOUT
    from dasf_geo.transport._common import send_payload, setting

    if not client._started:
        await client.start()
    timeout, what, opts = client.settle(
        payload, MessageType.REQUEST, timeout, what, options
    )
    limit = opts.max_size
    if limit is None:
        limit = client._matcher.reassembler.max_size
    stream = ReplyStream(
        what,
        client.topic,
        max_size=limit,
        idle_timeout=float(
            setting(client.config, "fragment_timeout", DEFAULT_FRAGMENT_TIMEOUT)
        ),
        memory_limit=memory_limit,
        progress=progress,
    )
    context = client._contexts.next()
    client._pending[context] = _pending_for(client, stream, what, progress, opts)
    loop = asyncio.get_running_loop()
    sent = False

    timed_out: list[RequestTimeout] = []

    def on_timeout() -> None:
        if stream.properties is None:
            message = (
                f"no reply from topic {client.topic!r} to {what} within {timeout:g} s"
            )
        elif sent:
            message = (
                f"the reply to {what} from topic {client.topic!r} did not arrive "
                f"whole within {timeout:g} s"
            )
        else:  # pragma: no cover - a reply before the request was sent
            message = f"no reply from topic {client.topic!r} to {what}"
        error = RequestTimeout(message, url=client.url, topic=client.topic)
        timed_out.append(error)
        stream.set_exception(error)

    timer: asyncio.TimerHandle | None = None
    if not isinstance(payload, StreamedUpload):
        timer = loop.call_later(timeout, on_timeout)

    def forget() -> None:
        if timer is not None:
            timer.cancel()
        client.forget(context)

    stream.on_close(forget)
    try:
        producer, props, size = await client.prepare_send(
            context, MessageType.REQUEST, accept, opts
        )
        if isinstance(payload, StreamedUpload):
            await send_streamed(producer, payload, props, size)
            # the timeout is for the reply: a slow uploader does not use it up
            timer = loop.call_later(timeout, on_timeout)
        else:
            await send_payload(producer, payload, props, size)
        sent = True
        await stream.wait_head()
        if timed_out:
            # the timer came due before this call went on, as for a
            # cancelled ``request``: the reply came too late, whole or not
            raise timed_out[0]
    except BaseException:
        stream.close()
        raise
    return stream


def _pending_for(
    client: Any,
    stream: ReplyStream,
    what: str,
    progress: Callable[[dict[str, Any]], None] | None,
    options: Any,
) -> Any:
    from dasf_geo.transport.caller import _Pending

    return _Pending(
        stream, what, progress, max_size=options.max_size, sink=stream.receive
    )
