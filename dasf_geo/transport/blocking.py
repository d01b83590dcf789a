"""The blocking caller: :class:`Client` and the shared clients of the process.

:class:`Client` runs the asyncio client (:mod:`dasf_geo.transport.caller`) on
one background event loop shared by all blocking clients of the process;
:func:`get_client` keeps one client per messaging config and topic, which
:func:`send_request` (the ``send_request`` of a backend module) uses.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import sys
import threading
from collections.abc import Awaitable, Coroutine, Iterable
from typing import Any

from dasf_geo._loop import new_event_loop
from dasf_geo.exceptions import (
    RequestTimeout,
    TransportError,
)
from dasf_geo.protocol.constants import (
    DEFAULT_MAX_PAYLOAD_SIZE,
    MessageType,
)
from dasf_geo.protocol.options import (
    TransferOptions,
    current_transfer_options,
)
from dasf_geo.transport._common import (
    MessagingSettings,
    OutgoingParts,
    header_of,
    payload_bytes,
    setting,
    shorten_switch_interval,
)
from dasf_geo.transport.caller import (
    AsyncClient,
    ProgressCallback,
    T,
    _request_payload,
    _ThreadWaiter,
    describe_request,
)
from dasf_geo.transport.replies import (
    BinaryValue,
    Reply,
    raise_for_status,
    warn_findings,
)

__all__ = [
    "Client",
    "close_clients",
    "get_client",
    "send_request",
]

logger = logging.getLogger("dasf_geo.transport.client")


class _LoopThread:
    """One daemon thread running the event loop of all blocking clients."""

    def __init__(self) -> None:
        shorten_switch_interval()
        self.loop = new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name="dasf-geo-client", daemon=True
        )
        self.thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except BaseException:
            fut.cancel()
            raise


_loop_lock = threading.Lock()
_loop_thread: _LoopThread | None = None
_loop_pid: int | None = None


def _background() -> _LoopThread:
    global _loop_thread, _loop_pid
    with _loop_lock:
        if _loop_thread is None or _loop_pid != os.getpid():
            _loop_thread = _LoopThread()
            _loop_pid = os.getpid()
        return _loop_thread


class Client:
    """Blocking client for one backend topic (see :class:`AsyncClient`).

    Safe to use from several threads at once; all requests share one pair of
    connections.
    """

    def __init__(
        self,
        config: MessagingSettings,
        topic: str | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        self._bg = _background()
        self._async = AsyncClient(config, topic, timeout=timeout)
        self._run(self._async.start())

    @property
    def topic(self) -> str:
        """The backend's topic."""
        return self._async.topic

    @property
    def timeout(self) -> float:
        """Default seconds to wait for a reply."""
        return self._async.timeout

    @property
    def features(self) -> frozenset[str] | None:
        """See :attr:`AsyncClient.features`."""
        return self._async.features

    @property
    def supports_parts(self) -> bool:
        """See :attr:`AsyncClient.supports_parts`."""
        return self._async.supports_parts

    def _run(self, coro: Awaitable[T]) -> T:
        return self._bg.run(coro)  # type: ignore[arg-type]

    def request(
        self,
        payload: bytes | OutgoingParts,
        *,
        message_type: MessageType | str = MessageType.REQUEST,
        timeout: float | None = None,
        what: str | None = None,
        progress: ProgressCallback | None = None,
        accept: Iterable[str] | None = None,
        options: TransferOptions | None = None,
    ) -> Reply:
        """Blocking :meth:`AsyncClient.request`.

        The calling thread hands the request to the event loop thread and
        waits on a lock that the reply releases.
        """
        client = self._async
        timeout = client.timeout if timeout is None else timeout
        what = what or f"a {MessageType(message_type).value} message"
        opts = current_transfer_options().merge(options)
        client._check_size(payload, opts, what)
        waiter = _ThreadWaiter(timeout)
        loop = self._bg.loop
        loop.call_soon_threadsafe(
            client._start_for_thread,
            waiter,
            payload,
            message_type,
            what,
            progress,
            accept,
            opts,
        )
        try:
            completed = waiter.wait(timeout)
            if not completed and waiter.task is not None:
                # the slow path's own timer raises a moment later
                completed = waiter.wait(1.0)
        except BaseException:  # e.g. KeyboardInterrupt
            loop.call_soon_threadsafe(client._abandon, waiter)
            raise
        if not completed:
            loop.call_soon_threadsafe(client._abandon, waiter)
            raise RequestTimeout(
                f"no reply from topic {client.topic!r} to {what} within "
                f"{timeout:g} s",
                url=client.url,
                topic=client.topic,
            )
        if waiter.error is not None:
            raise waiter.error
        assert waiter.reply is not None
        return waiter.reply

    def call(
        self,
        request: dict[str, Any],
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        accept: Iterable[str] | None = None,
        parts: Any = None,
        options: TransferOptions | None = None,
    ) -> Any:
        """Blocking :meth:`AsyncClient.call`."""
        payload = _request_payload(request, parts)
        reply = self.request(
            payload,
            timeout=timeout,
            what=describe_request(request),
            progress=progress,
            accept=accept,
            options=options,
        )
        raise_for_status(reply, self.topic)
        self._async.last_reply = reply
        warn_findings(reply)
        return reply.value()

    @property
    def last_reply(self) -> Reply | None:
        """See :attr:`AsyncClient.last_reply`."""
        return self._async.last_reply

    def ping(self, timeout: float | None = None) -> float:
        """Blocking :meth:`AsyncClient.ping`."""
        return self._run(self._async.ping(timeout))

    def api_info(self, timeout: float | None = None) -> dict[str, Any]:
        """Blocking :meth:`AsyncClient.api_info`."""
        return self._run(self._async.api_info(timeout))

    def info(self, timeout: float | None = None) -> dict[str, Any]:
        """Blocking :meth:`AsyncClient.info`."""
        return self._run(self._async.info(timeout))

    def close(self) -> None:
        """Close the connections."""
        with contextlib.suppress(Exception):
            self._run(self._async.close())

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_clients: dict[tuple[Any, ...], Client] = {}
_clients_lock = threading.Lock()


def _client_key(config: Any, topic: str) -> tuple[Any, ...]:
    return (
        os.getpid(),
        config.get_topic_url(topic),
        tuple(sorted(header_of(config).items())),
        setting(config, "max_payload_size", DEFAULT_MAX_PAYLOAD_SIZE),
    )


def get_client(config: Any, topic: str | None = None) -> Client:
    """A shared blocking client for ``topic`` (connections are reused).

    Raises:
        ConnectionFailed: the broker cannot be reached.
    """
    topic = topic or config.topic
    key = _client_key(config, topic)
    with _clients_lock:
        client = _clients.get(key)
        if client is None or client._async._closed:
            client = _clients[key] = Client(config, topic)
        return client


@atexit.register
def close_clients() -> None:
    """Close every shared client of :func:`get_client` (they reconnect lazily).

    Call it when the broker they talk to goes away for good (e.g. in tests),
    so that they stop trying to reconnect.
    """
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


def send_request(
    module_cls: Any,
    request: Any,
    *,
    timeout: float | None = None,
    options: TransferOptions | None = None,
    **kwargs: Any,
) -> Any:
    """Send ``request`` to the backend of ``module_cls`` and return the result.

    The request is validated locally first (so bad arguments fail before
    anything is sent), sent to the module's topic, and the JSON reply is
    validated with the request's return model. Dataset and DataArray
    arguments travel as binary parts of a multipart request (raw NetCDF,
    base64-encoded once) when the backend takes them: the shared client
    asks it once, with a ping, the first time a request has such an
    argument; other backends get the JSON form.

    Args:
        module_cls: a :class:`dasf_geo.backend.BackendModule` subclass.
        request: a dict, a module instance, or a file-like object with JSON.
        timeout: seconds to wait for the reply.
        options: fragment size, compression and size limit of this call
            (over those of an enclosing
            :func:`~dasf_geo.protocol.options.transfer_options` block).
        **kwargs: further arguments of :meth:`Client.request`.

    Raises:
        pydantic.ValidationError: the request is invalid locally.
        PayloadTooLarge: the request or the reply is above ``max_size``.
        RemoteError: the backend answered with an error.
        RequestTimeout, TransportError: see :meth:`AsyncClient.request`.
    """
    opts = current_transfer_options().merge(options)
    if hasattr(request, "read"):
        model = module_cls.model_validate_json(request.read())
    elif isinstance(request, module_cls):
        model = request
    elif hasattr(request, "root") and not isinstance(request, dict):
        model = module_cls.model_validate(request.root)
    else:
        model = module_cls.model_validate(request)
    config = module_cls.backend_config.messaging_config
    client = get_client(config)
    return_model = model.root.return_model
    writer = _part_writer(client, model, timeout, opts.compression)
    try:
        from dasf_geo.data import COMPRESSION_CONTEXT, PARTS_CONTEXT, original_errors

        context: dict[str, Any] = {COMPRESSION_CONTEXT: opts.compression}
        if writer is not None:
            context[PARTS_CONTEXT] = writer
        with original_errors():  # e.g. a CF error of an argument, as itself
            head = model.model_dump_json(context=context).encode()
        has_parts = writer is not None and writer.parts
        payload: bytes | OutgoingParts = (
            OutgoingParts(head, writer.parts) if has_parts else head
        )
        reply = client.request(
            payload,
            timeout=timeout,
            what=describe_request(json.loads(head)),
            accept=binary_accept(return_model),
            options=opts,
            **kwargs,
        )
    finally:
        if writer is not None:
            writer.close()
    raise_for_status(reply, client.topic)
    return _validate_result(reply, return_model)


def _validate_result(reply: Reply, return_model: Any) -> Any:
    """The reply's result validated with ``return_model``; findings warned.

    The backend's findings on the result are warned, and those of the
    local check that it did not report. Its findings on the arguments are
    not: the arguments were checked (and warned) here before they were sent.
    """
    from dasf_geo.data import collect_findings, warn_reports

    remote = reply.findings()
    with collect_findings() as local:
        value = reply.value()
        if isinstance(value, BinaryValue):
            result = return_model.model_validate(value.decode())
        else:
            result = return_model.model_validate_json(payload_bytes(reply.payload))
    known = {r.message for r in remote}
    warn_reports(
        [r for r in remote if r.label == "result"]
        + [r for r in local if r.message not in known],
        stacklevel=4,
    )
    return result


#: Longest wait for the ``pong`` that tells whether a backend takes
#: multipart requests (see :func:`send_request`).
PROBE_TIMEOUT = 10.0


def _part_writer(
    client: Client, model: Any, timeout: float | None, compression: int | None
) -> Any:
    """A :class:`~dasf_geo.data.PartWriter` if ``model`` goes multipart, else None.

    That is when it has a Dataset or DataArray argument and the backend
    takes multipart requests. A shared client that does not know yet asks
    once, with a ping (a backend that does not answer within
    :data:`PROBE_TIMEOUT` seconds gets JSON requests from this client).
    """
    if client.features is not None and not client.supports_parts:
        return None
    if not _has_xarray_argument(model):
        return None
    if client.features is None:
        wait = min(PROBE_TIMEOUT, client.timeout if timeout is None else timeout)
        try:
            client.ping(wait)
        except TransportError as exc:
            logger.info("JSON requests for topic %r: %s", client.topic, exc)
            client._async.features = frozenset()
    if not client.supports_parts:
        return None
    from dasf_geo.data import PartWriter

    return PartWriter(compression=compression)


def _has_xarray_argument(model: Any) -> bool:
    """True if an argument of the request ``model`` is a Dataset or DataArray."""
    xr = sys.modules.get("xarray")
    if xr is None:  # never imported: no argument can be one
        return False
    kinds = (xr.Dataset, xr.DataArray)
    member = getattr(model, "root", model)
    for obj in (member, getattr(member, "function", None)):
        if obj is None or not hasattr(type(obj), "model_fields"):
            continue
        if any(
            isinstance(getattr(obj, name, None), kinds)
            for name in type(obj).model_fields
        ):
            return True
    return False


def binary_accept(return_model: Any) -> tuple[str, ...] | None:
    """The binary media types to accept for a reply of ``return_model``.

    Those of the data registry when the return value itself is a Dataset or
    DataArray, else None (a JSON reply).
    """
    from dasf_geo.data import BINARY_MEDIA_TYPES, RegistryType

    field = getattr(return_model, "model_fields", {}).get("root")
    if field is None:
        return None
    for meta in field.metadata:
        if isinstance(meta, RegistryType) and meta.entry.name.startswith("xarray."):
            return BINARY_MEDIA_TYPES
    return None
