"""A dynamic client: call a running service without generating a stub.

:func:`connect` asks the backend on a topic for its ``api_info`` (the JSON
schemas of its functions and classes) and returns a :class:`Service` whose
attributes are those functions and classes, with their signatures and
docstrings::

    svc = dasf_geo.connect("hello-world-topic", broker="ws://127.0.0.1:8080")
    svc.hello_world()                                  # a function
    svc.HelloWorld(message="hi").repeat_message(repeat=3)   # a class

Arguments are checked against the signature locally (missing or unknown
arguments raise :class:`TypeError` before anything is sent); their types are
checked by the backend, whose structured errors come back as
:class:`~dasf_geo.exceptions.RemoteValidationError`. Values of registered
data types (``xr.Dataset``, ``pd.DataFrame``, ``np.ndarray``…) are encoded on
the way out and decoded on the way back, guided by the JSON schema the
backend published (``contentMediaType``). When the backend's API info says
it takes multipart requests (``dasfGeoFeatures``), Dataset and DataArray
arguments travel as raw NetCDF parts after the JSON instead of base64 text
inside it (see :mod:`dasf_geo.protocol.parts`).

:func:`aconnect` is the asyncio counterpart: the same attributes, but calls
return coroutines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from dasf_geo.exceptions import ConfigurationError, RemoteError
from dasf_geo.protocol.options import TransferOptions, current_transfer_options
from dasf_geo.service._members import _build_members
from dasf_geo.service._signature import _Signature, decode_value
from dasf_geo.transport.client import AsyncClient, Client
from dasf_geo.transport.discovery import adiscover, discover
from dasf_geo.transport.http import HTTPClient
from dasf_geo.transport.progress import ProgressBar, terminal_progress

__all__ = [
    "AsyncService",
    "RemoteParameters",
    "Service",
    "aconnect",
    "connect",
    "connect_http",
    "decode_value",
    "encode_request",
    "encode_value",
    "messaging_config",
]


def messaging_config(
    topic: str,
    broker: str | None = None,
    *,
    websocket_url: str | None = None,
    header: Mapping[str, str] | None = None,
    **options: Any,
) -> Any:
    """Build the messaging config for calling ``topic``.

    Args:
        topic: the backend's topic.
        broker: ``ws://HOST:PORT`` (or ``wss://``) of a broker that speaks the
            Pulsar WebSocket layout (the embedded broker, Apache Pulsar);
            several fronts of a broker cluster as a comma-separated list or
            a list (the client moves to the next when one goes away).
            Without it, the ``DE_BACKEND_*`` environment variables and the
            defaults (``localhost:8080``) apply.
        websocket_url: the base URL of a plain-layout broker such as
            dasf-broker-django (``ws://host/ws``); excludes ``broker``.
        header: HTTP headers for every handshake (e.g. ``Authorization``).
        **options: further fields of
            :class:`~dasf_geo.config.PulsarConfig` or
            :class:`~dasf_geo.config.WebsocketURLConfig` (``persistent``,
            ``tenant``, ``max_payload_size``…).

    Raises:
        ConfigurationError: ``broker`` is not a ``ws://HOST:PORT`` URL, or
            both ``broker`` and ``websocket_url`` were given.
    """
    from dasf_geo.config import PulsarConfig, WebsocketURLConfig
    from dasf_geo.config.messaging import config_class_for

    kws: dict[str, Any] = {"topic": topic, **options}
    if header:
        kws["header"] = dict(header)
    if broker and websocket_url:
        raise ConfigurationError(
            "give either broker='ws://HOST:PORT' (Pulsar layout) or "
            "websocket_url='ws://HOST/PATH' (plain layout), not both"
        )
    if config_class_for({"websocket_url": websocket_url}) is WebsocketURLConfig:
        return WebsocketURLConfig(websocket_url=websocket_url, **kws)
    if broker and (not isinstance(broker, str) or "," in broker):
        # several fronts of a broker cluster (see transport/failover.py)
        from dasf_geo.transport.failover import pulsar_fronts_config, split_brokers

        urls = split_brokers(broker)
        if len(urls) > 1:
            return pulsar_fronts_config(urls, **kws)
        broker = urls[0]
    if broker:
        parts = urlsplit(broker)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ConfigurationError(
                f"broker must look like ws://HOST:PORT, got {broker!r}; for a "
                "broker with a path (dasf-broker-django) use websocket_url=…"
            )
        if parts.path.strip("/") not in ("", "ws/v2"):
            raise ConfigurationError(
                f"broker {broker!r} has a path; the Pulsar layout needs "
                "ws://HOST:PORT, a plain-layout broker needs websocket_url=…"
            )
        if parts.scheme == "wss":
            # the Pulsar config builds ws:// URLs; wss goes through the URL form
            return WebsocketURLConfig(
                producer_url=f"wss://{parts.netloc}/ws/v2/producer/"
                + _pulsar_path(options),
                consumer_url=f"wss://{parts.netloc}/ws/v2/consumer/"
                + _pulsar_path(options),
                **{k: v for k, v in kws.items() if k not in _PULSAR_ONLY},
            )
        kws["host"] = parts.hostname
        if parts.port is not None:
            kws["port"] = parts.port
    return PulsarConfig(**kws)


_PULSAR_ONLY = {"persistent", "tenant", "namespace", "host", "port"}


def _pulsar_path(options: Mapping[str, Any]) -> str:
    persistent = options.get("persistent", False)
    if isinstance(persistent, bool):
        persistent = "persistent" if persistent else "non-persistent"
    return (
        f"{persistent}/{options.get('tenant', 'public')}/"
        f"{options.get('namespace', 'default')}"
    )


def encode_value(value: Any, parts: Any = None, compression: int | None = None) -> Any:
    """The JSON form of an argument value.

    Registered data types (``xr.Dataset``…) use their registered serializer;
    pydantic models and other values use pydantic's JSON conversion. With
    ``parts`` (a :class:`~dasf_geo.data.PartWriter`), a Dataset or DataArray
    is written as a binary part of a multipart request and its JSON form is
    the placeholder that refers to it. ``compression`` (a zlib level) writes
    a Dataset or DataArray as compressed NetCDF4.
    """
    from pydantic import BaseModel, TypeAdapter
    from pydantic_core import to_jsonable_python

    from dasf_geo.data import (
        COMPRESSION_CONTEXT,
        PARTS_CONTEXT,
        DataOptions,
        original_errors,
        resolve_annotation,
    )

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    # the backend checks CF and crs on arrival, under its own options
    options = DataOptions(cf="off", crs="off", demap="off")
    annotation = resolve_annotation(type(value), options)
    if annotation is not type(value):
        context: dict[str, Any] = {COMPRESSION_CONTEXT: compression}
        if parts is not None:
            context[PARTS_CONTEXT] = parts
        with original_errors():
            return TypeAdapter(annotation).dump_python(
                value, mode="json", context=context
            )
    return to_jsonable_python(value)


def encode_request(
    request: dict[str, Any], parts: Any = None, compression: int | None = None
) -> dict[str, Any]:
    """``request`` with every argument value in its JSON form.

    ``request`` is ``{"func_name": …, **arguments}`` or ``{"class_name": …,
    **arguments, "function": {"func_name": …, **arguments}}`` with Python
    values; see :func:`encode_value` for ``parts`` and ``compression``.
    """
    out: dict[str, Any] = {}
    is_class = "class_name" in request
    for key, value in request.items():
        if key in ("func_name", "class_name"):
            out[key] = value
        elif is_class and key == "function" and isinstance(value, dict):
            out[key] = encode_request(value, parts, compression)
        else:
            out[key] = encode_value(value, parts, compression)
    return out


# --- the service facades ----------------------------------------------------

#: ``None``: a bar on a terminal; ``False``: none; ``True``: always a bar;
#: a callable: called with every progress event
ProgressOption = bool | Callable[[dict[str, Any]], None] | None


def _progress_for(option: ProgressOption, name: str) -> Any:
    if option is None:
        return terminal_progress(f"{name}()")
    if option is True:
        return ProgressBar(f"{name}()")
    if option is False:
        return None
    return option


class _ServiceBase:
    """What :class:`Service` and :class:`AsyncService` share: the members."""

    def __init__(
        self,
        client: Any,
        api_info: dict[str, Any],
        *,
        decode: bool = True,
        progress: ProgressOption = None,
        transfer: TransferOptions | None = None,
    ) -> None:
        self._client = client
        self._decode = decode
        self._progress = progress
        #: transfer options of every call (under those of an enclosing
        #: :func:`~dasf_geo.protocol.options.transfer_options` block)
        self.transfer = TransferOptions.of(transfer)
        self.topic: str = client.topic
        self.api_info = api_info
        self._members = _build_members(api_info, self._send)

    def _send(self, request: dict[str, Any], sig: _Signature) -> Any:
        raise NotImplementedError

    def _options(self) -> TransferOptions:
        """The transfer options of a call made now."""
        return self.transfer.merge(current_transfer_options())

    def _encode(
        self, request: dict[str, Any], options: TransferOptions
    ) -> tuple[dict[str, Any], Any]:
        """The JSON request and its binary parts (None for a JSON request).

        Dataset and DataArray arguments become binary parts when the
        backend takes multipart requests (it said so with its API info).
        """
        compression = options.compression
        if not self._client.supports_parts:
            return encode_request(request, None, compression), None
        from dasf_geo.data import PartWriter

        writer = PartWriter(compression=compression)
        try:
            return encode_request(request, writer, compression), writer
        except BaseException:
            writer.close()
            raise

    def __getattr__(self, name: str) -> Any:
        members = self.__dict__.get("_members") or {}
        if name in members:
            return members[name]
        raise AttributeError(
            f"the service on topic {self.__dict__.get('topic')!r} has no function or "
            f"class {name!r}; it offers: {', '.join(members) or 'nothing'}"
        )

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._members})

    @property
    def members(self) -> list[str]:
        """The names of the service's functions and classes."""
        return list(self._members)

    @property
    def last_reply(self) -> Any:
        """The reply of the last successful call, or None.

        Its :meth:`~dasf_geo.transport.client.Reply.findings` are the CF/crs
        findings of the backend's checks of that call's arguments and result
        (also raised as warnings when the call returned).
        """
        return self._client.last_reply

    def __repr__(self) -> str:
        return f"<dasf_geo service {self.topic!r}: {', '.join(self._members)}>"


class RemoteParameters(MutableMapping[str, Any]):
    """The parameters of a :mod:`dasf_geo.service` service, as a mapping.

    ``svc.parameters["threshold"]`` reads a parameter, ``svc.parameters[
    "threshold"] = 290.0`` sets it (checked by the service against the
    parameter's type), ``dict(svc.parameters)`` lists the exposed ones.
    Each access is one request (``~get_parameter``, ``~set_parameter``,
    ``~list_parameters``).

    Raises (on access):
        KeyError: the service has no (exposed) parameter of that name.
        RemoteValidationError: a value of the wrong type.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def _call(self, request: dict[str, Any]) -> Any:
        try:
            return self._client.call(request)
        except RemoteError as exc:
            if exc.message.startswith("unknown parameter"):
                raise KeyError(exc.message) from None
            raise

    def __getitem__(self, name: str) -> Any:
        return self._call({"func_name": "~get_parameter", "parameter": name})

    def __setitem__(self, name: str, value: Any) -> None:
        self._call({"func_name": "~set_parameter", "parameter": name, "value": value})

    def __delitem__(self, name: str) -> None:
        raise TypeError("the parameters of a service cannot be removed")

    def _all(self) -> dict[str, Any]:
        return dict(self._call({"func_name": "~list_parameters"}))

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"<parameters of {self._client.topic!r}: {self._all()!r}>"


class Service(_ServiceBase):
    """A running service, with its functions and classes as attributes.

    Created by :func:`connect`; close it (or use ``with``) when done.

    Attributes:
        topic: the backend's topic.
        api_info: the API model the backend sent.
    """

    _client: Client

    @property
    def parameters(self) -> Any:
        """The parameters of a service written with :mod:`dasf_geo.service`
        (a :class:`RemoteParameters` mapping).

        Raises:
            AttributeError: the backend is not such a service.
        """
        if "service" not in self.api_info:
            if "parameters" in self._members:  # a function of that name
                return self._members["parameters"]
            raise AttributeError(
                f"the backend on topic {self.topic!r} is not a dasf_geo.service "
                "service: it has no parameters"
            )
        return RemoteParameters(self._client)

    def _send(self, request: dict[str, Any], sig: _Signature) -> Any:
        options = self._options()
        encoded, parts = self._encode(request, options)
        bar = _progress_for(self._progress, sig.name)
        try:
            result = self._client.call(
                encoded, progress=bar, accept=sig.accept, parts=parts, options=options
            )
        finally:
            if parts is not None:
                parts.close()
            if isinstance(bar, ProgressBar):
                bar.close()
        return sig.decode(result, self._decode)

    def ping(self, timeout: float | None = None) -> float:
        """Ping the backend; return the round-trip time in seconds."""
        return self._client.ping(timeout)

    def close(self) -> None:
        """Close the connections to the broker."""
        self._client.close()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncService(_ServiceBase):
    """The asyncio counterpart of :class:`Service`: calls return coroutines.

    Created by :func:`aconnect`; ``await service.close()`` when done.
    """

    _client: AsyncClient

    async def _call(self, request: dict[str, Any], sig: _Signature) -> Any:
        options = self._options()
        encoded, parts = self._encode(request, options)
        bar = _progress_for(self._progress, sig.name)
        try:
            result = await self._client.call(
                encoded, progress=bar, accept=sig.accept, parts=parts, options=options
            )
        finally:
            if parts is not None:
                parts.close()
            if isinstance(bar, ProgressBar):
                bar.close()
        return sig.decode(result, self._decode)

    def _send(self, request: dict[str, Any], sig: _Signature) -> Any:
        return self._call(request, sig)

    async def ping(self, timeout: float | None = None) -> float:
        """Ping the backend; return the round-trip time in seconds."""
        return await self._client.ping(timeout)

    async def close(self) -> None:
        """Close the connections to the broker."""
        await self._client.close()

    async def __aenter__(self) -> AsyncService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def connect_http(
    url: str,
    *,
    header: Mapping[str, str] | None = None,
    timeout: float | None = None,
    decode: bool = True,
    progress: Any = None,
    transfer: Any = None,
) -> Service:
    """A :class:`Service` for a service URL (calls go through the HTTP gateway).

    Raises:
        ConfigurationError: ``url`` is not ``http(s)://HOST:PORT/services/TOPIC``.
        ConnectionFailed: the gateway cannot be reached or refused the token.
        RemoteError: no such service.
    """
    client = HTTPClient(url, header, timeout)
    try:
        info = client.api_info(timeout)
        return Service(
            client, info, decode=decode, progress=progress, transfer=transfer
        )
    except BaseException:
        client.close()
        raise


def _config_for(
    config: Any,
    topic: str,
    broker: str | None,
    websocket_url: str | None,
    header: Mapping[str, str] | None,
    options: Mapping[str, Any],
) -> Any:
    """The messaging config of :func:`connect` and :func:`aconnect`.

    ``config`` when given (the connection arguments are then ignored),
    else :func:`messaging_config` of the others.
    """
    if config is not None:
        return config
    return messaging_config(
        topic, broker, websocket_url=websocket_url, header=header, **options
    )


def connect(
    topic: str,
    broker: str | None = None,
    *,
    websocket_url: str | None = None,
    header: Mapping[str, str] | None = None,
    timeout: float | None = None,
    config: Any = None,
    decode: bool = True,
    progress: ProgressOption = None,
    transfer: TransferOptions | None = None,
    discovery_timeout: float | None = None,
    **options: Any,
) -> Service:
    """Connect to the service on ``topic`` and return it as a :class:`Service`.

    Args:
        topic: the backend's topic, or the URL of the service behind an HTTP
            gateway (``http://HOST:PORT/services/TOPIC``: calls go over HTTP,
            see :mod:`dasf_geo.transport.http` and :func:`connect_http`).
        broker: ``ws://HOST:PORT`` of a Pulsar-layout broker (see
            :func:`messaging_config`).
        websocket_url: base URL of a plain-layout broker (dasf-broker-django).
        header: HTTP headers for every handshake.
        timeout: default seconds to wait for each reply.
        config: a ready messaging config (then the other connection
            arguments are ignored).
        decode: turn results back into Python objects (``xr.Dataset``…)
            as the backend's return schema says; False gives the JSON values.
        progress: progress of large replies and the backend's progress
            reports: ``None`` draws a bar when standard error is a terminal,
            ``True`` always, ``False`` never; a callable receives the events
            (see :mod:`dasf_geo.transport.progress`).
        transfer: fragment size, compression and size limit of every call
            (a :class:`~dasf_geo.protocol.options.TransferOptions`; a
            :func:`~dasf_geo.protocol.options.transfer_options` block around
            a call overrides them).
        discovery_timeout: seconds to wait for the service to send its API
            info (default 10; not the call ``timeout``). On a terminal,
            "waiting for a service on topic ..." shows after a second.
        **options: further messaging config fields.

    Raises:
        ConnectionFailed: the broker cannot be reached (names the URL).
        ServiceNotFound: no service answered on ``topic`` within
            ``discovery_timeout``; the message lists the topics that have a
            service where the broker can tell.
    """
    if topic.startswith(("http://", "https://")):
        return connect_http(
            topic,
            header=header,
            timeout=timeout,
            decode=decode,
            progress=progress,
            transfer=transfer,
        )
    config = _config_for(config, topic, broker, websocket_url, header, options)
    client = Client(config, topic, timeout=timeout)
    try:
        api_info = discover(client, config, discovery_timeout)
        return Service(
            client, api_info, decode=decode, progress=progress, transfer=transfer
        )
    except BaseException:
        client.close()
        raise


async def aconnect(
    topic: str,
    broker: str | None = None,
    *,
    websocket_url: str | None = None,
    header: Mapping[str, str] | None = None,
    timeout: float | None = None,
    config: Any = None,
    decode: bool = True,
    progress: ProgressOption = None,
    transfer: TransferOptions | None = None,
    discovery_timeout: float | None = None,
    **options: Any,
) -> AsyncService:
    """The asyncio form of :func:`connect`; returns an :class:`AsyncService`.

    Raises:
        ConfigurationError: ``topic`` is an HTTP URL (use :func:`connect`).
    """
    if topic.startswith(("http://", "https://")):
        raise ConfigurationError(
            "aconnect() speaks to a broker; for a service behind an HTTP gateway "
            f"use connect({topic!r})"
        )
    config = _config_for(config, topic, broker, websocket_url, header, options)
    client = AsyncClient(config, topic, timeout=timeout)
    try:
        await client.start()
        api_info = await adiscover(client, config, discovery_timeout)
        return AsyncService(
            client, api_info, decode=decode, progress=progress, transfer=transfer
        )
    except BaseException:
        await client.close()
        raise
