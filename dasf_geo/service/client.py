"""A backend module's calls through the broker: :func:`send_request`.

``BackendModule.send_request()`` and the stubs of a generated client call
:func:`send_request`: it validates the request with the module's model,
sends it with the process's shared blocking client of the module's
messaging config (:func:`~dasf_geo.transport.blocking.get_client`), and
validates the reply with the request's return model. Dataset and DataArray
arguments travel as binary parts (:func:`_part_writer`) when the backend
takes them, and a Dataset or DataArray result is asked for as raw NetCDF
(:func:`binary_accept`).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING, Any

from dasf_geo.exceptions import TransportError
from dasf_geo.protocol.options import TransferOptions, current_transfer_options
from dasf_geo.transport._common import OutgoingParts, payload_bytes
from dasf_geo.transport.blocking import Client, get_client
from dasf_geo.transport.caller import describe_request
from dasf_geo.transport.replies import BinaryValue, Reply, raise_for_status

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

    from dasf_geo.backend import BackendModule, ReturnModel
    from dasf_geo.data import PartWriter

__all__ = ["PROBE_TIMEOUT", "binary_accept", "send_request"]

# the logger of the calls' messages before they moved here, kept for log configs
logger = logging.getLogger("dasf_geo.transport.client")


def send_request(
    module_cls: type[BackendModule],
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
        payload: bytes | OutgoingParts = head
        if writer is not None and writer.parts:
            payload = OutgoingParts(head, writer.parts)
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


def _validate_result(reply: Reply, return_model: type[ReturnModel]) -> Any:
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
    client: Client,
    model: BackendModule,
    timeout: float | None,
    compression: int | None,
) -> PartWriter | None:
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
            client.features = frozenset()
    if not client.supports_parts:
        return None
    from dasf_geo.data import PartWriter

    return PartWriter(compression=compression)


def _has_xarray_argument(model: BackendModule) -> bool:
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


def binary_accept(return_model: type[BaseModel]) -> tuple[str, ...] | None:
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
