"""Layer 1, protocol: the DASF wire protocol as pure functions and models.

Nothing here opens a socket, starts a thread or touches asyncio: messages go
in as ``dict``/``str``/``bytes`` and come out the same way, so every rule of
the wire protocol (docs/protocol.md) can be tested message-in / message-out.
"""

from dasf_geo.protocol.constants import (
    DEFAULT_MAX_PAYLOAD_SIZE,
    MessageType,
    PropertyKeys,
    Status,
)
from dasf_geo.protocol.fragments import (
    Fragment,
    Reassembler,
    split_payload,
    split_stream,
)
from dasf_geo.protocol.messages import (
    ConsumerMessage,
    ProducerAck,
    RequestHeader,
    ack_frame,
    b64decode,
    b64encode,
    build_producer_frame,
    negative_ack_frame,
    new_request_context,
    new_response_topic,
    parse_ack,
    parse_consumer_message,
    parse_request_header,
    reply_properties,
    request_properties,
)

__all__ = [
    "DEFAULT_MAX_PAYLOAD_SIZE",
    "ConsumerMessage",
    "Fragment",
    "MessageType",
    "ProducerAck",
    "PropertyKeys",
    "Reassembler",
    "RequestHeader",
    "Status",
    "ack_frame",
    "b64decode",
    "b64encode",
    "build_producer_frame",
    "negative_ack_frame",
    "new_request_context",
    "new_response_topic",
    "parse_ack",
    "parse_consumer_message",
    "parse_request_header",
    "reply_properties",
    "request_properties",
    "split_payload",
    "split_stream",
]
