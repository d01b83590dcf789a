"""Serving a backend module: its request handler and its entry points.

:class:`ModuleHandler` is the :class:`~dasf_geo.transport.handler.RequestHandler`
of a :class:`~dasf_geo.backend.BackendModule`: it validates a request with
the module's model, runs the member, and serialises the return model into
the reply (raw NetCDF for a caller that accepts it, see
:func:`binary_reply`; CF/crs findings attached, see :func:`with_findings`).
The transport's :class:`~dasf_geo.transport.listener.Listener` consumes the
topic and calls it; the error replies it builds from what the handler
raises live in :mod:`dasf_geo.transport.handler`.

The blocking entry points :func:`listen` (until SIGINT/SIGTERM),
:class:`BackgroundListener` (a backend in a thread of this process) and
:func:`test_connect` serve a module class with a :class:`ModuleHandler`;
``BackendModule.listen()`` and ``test_connect()`` delegate here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec

from pydantic import ValidationError

from dasf_geo._loop import run as run_loop
from dasf_geo._loop import until_signal
from dasf_geo.exceptions import ResultError, TransportError
from dasf_geo.protocol.constants import EXT_ENCODING, EXT_FINDINGS
from dasf_geo.protocol.options import TransferOptions
from dasf_geo.protocol.progress import ProgressReport, ReportSender
from dasf_geo.transport._common import (
    OutgoingFile,
    ReceivedPart,
    shorten_switch_interval,
)
from dasf_geo.transport.connection import AsyncConsumer, AsyncProducer, redact_url
from dasf_geo.transport.handler import (
    FunctionReply,
    RequestHandler,
    RequestTooLarge,
    over_limit_message,
    structured_errors,
)
from dasf_geo.transport.listener import Listener

if TYPE_CHECKING:  # pragma: no cover
    from dasf_geo.backend import (
        BackendClass,
        BackendFunction,
        BackendModule,
        ReturnModel,
    )

P = ParamSpec("P")

__all__ = [
    "BackgroundListener",
    "ModuleHandler",
    "attach_reporters",
    "binary_reply",
    "listen",
    "test_connect",
    "with_findings",
]


def _member_label(member: BackendFunction | BackendClass) -> str:
    """``"function 'f'"`` or ``"method 'C.m'"`` for messages."""
    config = member.backend_config
    function = getattr(member, "function", None)
    if function is not None:
        return f"method '{config.name}.{function.backend_config.name}'"
    return f"function '{config.name}'"


def _sending_findings(
    handle: Callable[P, bytes | OutgoingFile | FunctionReply],
) -> Callable[P, bytes | OutgoingFile | FunctionReply]:
    """``handle``, the CF/crs findings it collects sent back with its reply."""

    @functools.wraps(handle)
    def handle_sending_findings(
        *args: P.args, **kwargs: P.kwargs
    ) -> bytes | OutgoingFile | FunctionReply:
        from dasf_geo.data import collect_findings, encode_reports

        with collect_findings() as reports:
            reply = handle(*args, **kwargs)
        return with_findings(reply, encode_reports(reports)) if reports else reply

    return handle_sending_findings


class ModuleHandler:
    """A :class:`RequestHandler` for a :class:`dasf_geo.backend.BackendModule`."""

    #: the media types of binary parts a multipart request may carry
    #: (NetCDF or zipped zarr of a Dataset or DataArray argument)
    part_media_types: frozenset[str]

    def __init__(self, module_cls: type[BackendModule]) -> None:
        from dasf_geo.data import BINARY_MEDIA_TYPES

        self.part_media_types = frozenset(BINARY_MEDIA_TYPES)
        self.module_cls = module_cls
        config = module_cls.backend_config
        self.config = config.messaging_config
        self.topic: str = self.config.topic
        self.debug: bool = bool(getattr(config, "debug", False))
        self._info: str | None = None
        self._api_info: str | None = None

    @_sending_findings
    def handle(
        self,
        payload: bytes | bytearray,
        progress: ReportSender | None = None,
        accept: frozenset[str] = frozenset(),
        parts: list[ReceivedPart] | None = None,
        compression: int | None = None,
    ) -> bytes | OutgoingFile | FunctionReply:
        """Validate the request, run it and serialise the return model.

        The ``warn``/``optional`` findings of the arguments' and the
        result's checks are logged once each and travel with the reply in
        its ``dasfGeoFindings`` property (see :func:`with_findings`).

        A Dataset or DataArray result goes back as raw NetCDF bytes written
        to a temporary file when the caller accepts that (see
        :func:`binary_reply`); otherwise as the JSON of the return model.
        ``compression`` (a zlib level the caller asked for) makes such a
        result compressed NetCDF4, unless its function forces NetCDF3.

        ``parts`` are the binary parts of a multipart request: its
        placeholders are validated as the Dataset or DataArray in the part
        they name (see :func:`dasf_geo.data.request_parts`).

        A function configured with ``@configure(transfer=...)`` gets its
        reply back as a :class:`FunctionReply`, and a request above its
        ``max_size`` is refused before the function runs.

        Raises:
            pydantic.ValidationError: the request is invalid (a part that
                is not NetCDF, a placeholder for a part that does not
                exist, … name the argument).
            PartError: a part no placeholder refers to.
            PayloadTooLarge: the request (its JSON and parts) is above the
                function's ``max_size`` (answered as a ``payload_too_large``
                error, unlike a PayloadTooLarge the function itself raises).
        """
        if parts is None:
            model = self.module_cls.model_validate_json(payload)
        else:
            from dasf_geo.data import BinaryPart, request_parts

            received = [
                BinaryPart(p.index, p.media_type, p.source, p.size) for p in parts
            ]
            with request_parts(received):
                model = self.module_cls.model_validate_json(payload)
            del received  # the arguments hold what they need
        member = model.root
        limits: TransferOptions = member.transfer_options()
        if limits.max_size is not None:
            size = len(payload) + sum(p.size for p in parts or ())
            if size > limits.max_size:
                raise RequestTooLarge(
                    over_limit_message(
                        "request", size, limits.max_size, _member_label(member)
                    ),
                    size=size,
                    limit=limits.max_size,
                )
        if progress is not None:
            attach_reporters(model, progress)
        try:
            result = model()
        except ValidationError as exc:
            # the request was valid: the result (or the function's own
            # validation) is what failed, not the caller's arguments
            raise ResultError(
                f"the function ran, but its result is not valid: {exc}",
                structured_errors(exc),
            ) from exc
        reply: bytes | OutgoingFile | None = None
        if accept:
            reply = binary_reply(result, accept, compression)
        if reply is None:
            from dasf_geo.data import COMPRESSION_CONTEXT, original_errors

            context = (
                None if compression is None else {COMPRESSION_CONTEXT: compression}
            )
            with original_errors():  # a CF error of the result, not pydantic's
                reply = bytes(
                    result.__pydantic_serializer__.to_json(result, context=context)
                )
        if limits:
            return FunctionReply(reply, limits, _member_label(member))
        return reply

    def info(self) -> str:
        """The module's JSON schema (cached)."""
        if self._info is None:
            self._info = json.dumps(self.module_cls.model_json_schema())
        return self._info

    def api_info(self) -> str:
        """The module's API info (cached)."""
        if self._api_info is None:
            self._api_info = self.module_cls.get_api_info().model_dump_json()
        return self._api_info


def binary_reply(
    result: ReturnModel, accept: frozenset[str], compression: int | None = None
) -> OutgoingFile | None:
    """The raw binary form of ``result`` if the caller accepts it, else None.

    Applies when the return value itself is an ``xr.Dataset`` or
    ``xr.DataArray`` encoded by the data registry (no custom
    ``return_serializer``): it is checked and encoded under the function's
    data options exactly as for a JSON reply, but written as NetCDF (or
    zipped zarr) bytes into a temporary file instead of base64 text inside
    JSON — so the reply is base64-encoded once, on the wire, never held as
    one big string, and (written by the engine to a path) never held as one
    big bytes object either. ``compression``: see :func:`write_reply`.
    """
    from dasf_geo.data import write_reply_file

    field = type(result).model_fields.get("root")
    if field is None:
        return None
    written = write_reply_file(result.root, field.metadata, accept, compression)
    if written is None:
        return None
    file, size, media_type = written  # closed by OutgoingFile.close
    return OutgoingFile(file, size, {EXT_ENCODING: media_type})


def with_findings(
    reply: bytes | OutgoingFile | FunctionReply, findings: str
) -> OutgoingFile | FunctionReply:
    """``reply`` carrying ``findings`` (JSON text) in ``dasfGeoFindings``.

    Bytes become an :class:`OutgoingFile` over them, so that the property
    rides on every message of the reply.
    """
    if isinstance(reply, FunctionReply):
        payload = with_findings(reply.payload, findings)
        assert isinstance(payload, OutgoingFile)
        return FunctionReply(payload, reply.options, reply.label)
    if isinstance(reply, OutgoingFile):
        reply.properties[EXT_FINDINGS] = findings
        return reply
    return OutgoingFile(io.BytesIO(reply), len(reply), {EXT_FINDINGS: findings})


def attach_reporters(model: BackendModule, sender: ReportSender) -> None:
    """Give the progress reports among a request's arguments to ``sender``.

    Each report is copied first, so that a default report shared by all
    calls of a function is never mutated by one of them.
    """
    function = getattr(model, "root", model)
    function = getattr(function, "function", function)  # a class's method
    for name in type(function).model_fields:
        value = getattr(function, name, None)
        if isinstance(value, ProgressReport):
            report = value.model_copy(deep=True)
            report.attach(sender)
            # bypass validate_assignment: the value is a valid report already
            function.__dict__[name] = report


def _config_of(module_cls: type[BackendModule]) -> Any:
    return module_cls.backend_config.messaging_config


def listen(
    module_cls: type[BackendModule], *, handler: RequestHandler | None = None
) -> None:
    """Serve ``module_cls`` until SIGINT or SIGTERM (blocking).

    In-flight requests are finished before returning; a second signal stops
    at once.

    Raises:
        ConnectionFailed: the broker cannot be reached at start.
    """
    handler = handler or ModuleHandler(module_cls)
    config = _config_of(module_cls)
    shorten_switch_interval()  # requests run in worker threads
    run_loop(until_signal(Listener(handler, config).run))


class BackgroundListener:
    """Serve a backend module from a background thread of this process.

    For notebooks, tests and examples: the module answers requests while the
    program goes on. ``with BackgroundListener(module_cls):`` starts it and
    waits until it consumes its topic; leaving the block finishes the
    requests in progress and stops it.

    Args:
        module_cls: a :class:`dasf_geo.backend.BackendModule` subclass.
        handler: runs the requests (default: the module itself).
    """

    def __init__(
        self,
        module_cls: type[BackendModule],
        *,
        handler: RequestHandler | None = None,
    ):
        self.listener = Listener(
            handler or ModuleHandler(module_cls), _config_of(module_cls)
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> BackgroundListener:
        """Start serving; return once the topic is consumed.

        Raises:
            ConnectionFailed: the broker cannot be reached.
            TransportError: the listener did not connect within ``timeout``.
        """
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            task = asyncio.create_task(self.listener.run(self._stop))
            waiter = asyncio.create_task(self.listener.connected.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            ready.set()
            waiter.cancel()
            await task

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # reported by start() or stop()
                self._error = exc
            finally:
                ready.set()

        self._thread = threading.Thread(
            target=run, name=f"dasf-geo listener {self.listener.topic}", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout) or (
            self._error is None and not self.listener.connected.is_set()
        ):
            self.stop()
            raise TransportError(
                f"the listener on topic {self.listener.topic!r} did not connect "
                f"within {timeout:g} s"
            )
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the requests in progress and stop (idempotent)."""
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> BackgroundListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def test_connect(module_cls: type[BackendModule]) -> bool:
    """Check that the broker accepts this backend's consumer and producer.

    With several broker fronts (``--broker ws://a,ws://b``) each front is
    checked and named in its own line. Prints what was checked; returns
    True if both connections opened on every front.
    """
    config = _config_of(module_cls)
    listener = Listener(ModuleHandler(module_cls), config)
    consumer_urls = listener.consumer_urls
    producer_urls = config.get_topic_urls(listener.topic)
    if len(producer_urls) != len(consumer_urls):  # pragma: no cover - config bug
        producer_urls = [producer_urls[0]] * len(consumer_urls)

    async def check(consumer_url: str, producer_url: str) -> None:
        consumer = AsyncConsumer(
            consumer_url,
            listener.header,
            open_timeout=listener.open_timeout,
            # left unacked: the broker hands them on once this check closes
            on_message=lambda msg: None,
        )
        producer = AsyncProducer(
            producer_url, listener.header, open_timeout=listener.open_timeout
        )
        try:
            await consumer.connect()
            await producer.connect()
        finally:
            await consumer.close()
            await producer.close()

    what = f"consumer and producer of topic {listener.topic!r}"
    if len(consumer_urls) == 1:
        try:
            asyncio.run(check(consumer_urls[0], producer_urls[0]))
        except TransportError as exc:
            print(f"connection test failed: {exc}")
            return False
        print(f"connection test succeeded: {what} at {redact_url(consumer_urls[0])}")
        return True
    failed = 0
    count = len(consumer_urls)
    for number, (consumer_url, producer_url) in enumerate(
        zip(consumer_urls, producer_urls, strict=True), 1
    ):
        try:
            asyncio.run(check(consumer_url, producer_url))
        except TransportError as exc:
            failed += 1
            print(f"front {number} of {count}: failed: {exc}")
        else:
            print(f"front {number} of {count}: ok, {redact_url(consumer_url)}")
    if failed == count:
        print(f"connection test failed: all {count} broker fronts refused the {what}")
        return False
    if failed:
        print(
            f"connection test failed: {failed} of {count} broker fronts refused "
            f"the {what} (the backend runs on the others, but cannot fail "
            "over to those)"
        )
        return False
    print(f"connection test succeeded: {what} on all {count} broker fronts")
    return True


test_connect.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
