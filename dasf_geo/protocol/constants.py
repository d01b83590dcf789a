"""Names that the DASF protocol fixes: property keys, message types, statuses.

The spelling of every value here is part of the wire format (docs/protocol.md,
"The DASF envelope") and must not change.
"""

from __future__ import annotations

from enum import Enum

# defined with the other sizes; re-exported here where it always was
from dasf_geo.protocol.limits import DEFAULT_MAX_PAYLOAD_SIZE

__all__ = [
    "DEFAULT_MAX_PAYLOAD_SIZE",
    "EXT_ABORT",
    "EXT_ACCEPT",
    "EXT_CHECKSUM",
    "EXT_COMPRESSION",
    "EXT_ENCODING",
    "EXT_ERRORS",
    "EXT_FEATURES",
    "EXT_FINDINGS",
    "EXT_FRAGMENT_SIZE",
    "EXT_MAX_SIZE",
    "EXT_PARTS",
    "EXT_SIZE",
    "EXT_TRANSFER",
    "FEATURE_PARTS",
    "JSON_MEDIA_TYPE",
    "KEY_MESSAGE_TYPE",
    "KEY_REQUEST_CONTEXT",
    "KEY_RESPONSE_TOPIC",
    "KEY_SOURCE_TOPIC",
    "KEY_STATUS",
    "PART_KEY",
    "MessageType",
    "PropertyKeys",
    "Status",
]


class Status(str, Enum):
    """The ``status`` property of a reply."""

    SUCCESS = "success"
    ERROR = "error"
    RUNNING = "running"


class PropertyKeys(str, Enum):
    """Keys of the ``properties`` object that carry the DASF RPC envelope."""

    REQUEST_CONTEXT = "requestContext"
    RESPONSE_TOPIC = "response_topic"
    SOURCE_TOPIC = "source_topic"
    REQUEST_MESSAGEID = "requestMessageId"
    MESSAGE_TYPE = "messageType"
    FRAGMENT = "fragment"
    NUM_FRAGMENTS = "num_fragments"
    STATUS = "status"
    INFO = "info"
    API_INFO = "api_info"


class MessageType(str, Enum):
    """Values of the ``messageType`` property."""

    PING = "ping"
    PONG = "pong"
    REQUEST = "request"
    RESPONSE = "response"
    LOG = "log"
    INFO = "info"
    PROGRESS = "progress"
    API_INFO = "api_info"


# The property keys per-message code reads, as plain strings: reading
# ``PropertyKeys.X.value`` costs about half a microsecond each time.
KEY_RESPONSE_TOPIC: str = PropertyKeys.RESPONSE_TOPIC.value
KEY_REQUEST_CONTEXT: str = PropertyKeys.REQUEST_CONTEXT.value
KEY_MESSAGE_TYPE: str = PropertyKeys.MESSAGE_TYPE.value
KEY_SOURCE_TOPIC: str = PropertyKeys.SOURCE_TOPIC.value
KEY_STATUS: str = PropertyKeys.STATUS.value


# Extension properties. Other DASF peers ignore properties they do not know,
# so these ride along without breaking interoperability.

#: CRC-32 (8 lowercase hex digits) of the fragment's base64 text.
EXT_CHECKSUM = "dasfGeoCrc32"
#: Total number of payload bytes (after base64 decoding) of the whole message.
EXT_SIZE = "dasfGeoSize"
#: Random id shared by all fragments of one payload, so that two payloads
#: with the same requestContext (a retry, a duplicate) never mix.
EXT_TRANSFER = "dasfGeoTransfer"
#: On the message that ends an abandoned fragmented payload (its sender's
#: source broke off, its caller was cancelled): the sender will send no
#: further fragment, so the receiver drops what it holds of the transfer at
#: once instead of after its fragment timeout. The value says why (text).
#: The message repeats fragment 0's ``fragment``, ``num_fragments``,
#: ``dasfGeoSize`` and ``dasfGeoTransfer`` with an empty payload, so that a
#: receiver which does not know this property sees a duplicate of fragment
#: 0 and drops it (see :func:`dasf_geo.protocol.fragments.abort_marker`).
EXT_ABORT = "dasfGeoAbort"
#: On error replies: JSON list of structured errors (pydantic's ``.errors()``).
EXT_ERRORS = "dasfGeoErrors"
#: On replies: the media type of the payload bytes when they are not the JSON
#: of the result but its raw binary form (e.g. NetCDF bytes of a Dataset
#: result). Only sent to callers that asked for it with ``dasfGeoAccept``.
EXT_ENCODING = "dasfGeoEncoding"
#: On requests: comma-separated media types the caller can take as a raw
#: binary reply instead of JSON (saves the second base64 of NetCDF replies).
EXT_ACCEPT = "dasfGeoAccept"
#: On requests: how to cut a multipart payload (the JSON text of the request
#: followed by raw binary parts, e.g. the NetCDF bytes of a Dataset argument):
#: JSON text of a list of ``{"size": bytes, "type": media type}``, the JSON
#: part first. See :mod:`dasf_geo.protocol.parts`.
EXT_PARTS = "dasfGeoParts"
#: On ``pong``, ``info`` and ``api_info`` replies of dasf_geo backends: the
#: comma-separated protocol extensions the backend understands (e.g.
#: ``parts``), so that a caller only uses them with backends that do.
EXT_FEATURES = "dasfGeoFeatures"
#: On requests: the largest payload of one message, in base64 characters,
#: for the request's fragments and the reply's (see
#: :mod:`dasf_geo.protocol.options`).
EXT_FRAGMENT_SIZE = "dasfGeoFragmentSize"
#: On requests: zlib level 1-9 for the call's Dataset/DataArray values.
EXT_COMPRESSION = "dasfGeoCompression"
#: On requests: the largest request or reply, in bytes, the caller accepts.
EXT_MAX_SIZE = "dasfGeoMaxSize"
#: On replies (error replies too, when the call failed after a value was
#: checked): the CF/crs findings of ``warn``/``optional``
#: checks of the call's arguments and result, as JSON text of a list of
#: ``{"kind": "CF"|"crs", "label": argument name or "result", "message":
#: text, "findings": [{"variable", "attribute", "rule", "message",
#: "suggestion"?}]}`` (at most 64 KiB). dasf_geo callers raise them as
#: warnings; other DASF peers ignore the property.
EXT_FINDINGS = "dasfGeoFindings"
#: The feature name of multipart requests (in ``dasfGeoFeatures``).
FEATURE_PARTS = "parts"
#: In the JSON part of a multipart request: ``{"$dasfGeoPart": n}`` stands
#: for the value in binary part ``n`` (1-based; part 0 is the JSON itself).
PART_KEY = "$dasfGeoPart"
#: The media type of the JSON part of a multipart request.
JSON_MEDIA_TYPE = "application/json"

# --- topics -----------------------------------------------------------------
#: The topic ``dasf_geo.service.notify`` publishes notifications on (the
#: gateway consumes it). It carries no service: discovery never lists it.
NOTIFICATIONS_TOPIC = "dasf-geo-notifications"
