"""What the broker says about its topics (sans-I/O).

- :func:`status_ping` records what backends post to ``/ws/status-ping``
  (dasf-broker-django's route): the time of their last ``pong`` and their
  ``api_info``, on the topic named by the ``source_topic`` property;
- :func:`stats` is what ``GET /topics`` returns, :func:`counts` what
  ``GET /health`` adds to its status.

:class:`~dasf_geo.broker.core.BrokerCore` calls them with its topics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dasf_geo.broker.frames import (
    _dump,
    _parse_object,
    _send_error,
    _status_ack,
)
from dasf_geo.broker.model import SendErrorCode, Topic, _now_iso
from dasf_geo.broker.names import TopicName, validate_topic_part
from dasf_geo.exceptions import ProtocolError
from dasf_geo.protocol.messages import loads_strict_json

__all__ = ["counts", "stats", "status_ping"]


def status_ping(
    topics: dict[str, Topic],
    frame: bytes,
    may_consume: Callable[[TopicName], bool],
    new_id: Callable[[], str],
) -> bytes:
    """Handle a frame sent to ``/ws/status-ping``; return the ack.

    Backends post ``pong`` and ``api_info`` replies there; the broker
    records them on the (plain layout) topic named by the
    ``source_topic`` property, like dasf-broker-django, if that topic is
    in use (has a subscription or a producer).
    """
    try:
        obj = _parse_object(frame, "message")
    except ProtocolError as exc:
        return _send_error(SendErrorCode.JSON, str(exc), None)
    context = None if "context" not in obj else _dump(obj["context"])
    message_id = new_id()
    props = obj.get("properties")
    slug = props.get("source_topic") if isinstance(props, dict) else None
    if not isinstance(slug, str) or not slug:
        return _status_ack("No source topic found.", message_id, context)
    try:
        name = TopicName(False, "public", "default", validate_topic_part(slug))
    except ProtocolError as exc:
        return _status_ack(str(exc), message_id, context)
    topic = topics.get(name.full)
    if topic is None or not may_consume(name):
        # dasf-broker-django answers both cases with this text
        return _status_ack(
            "User is not allowed to publish to this topic", message_id, context
        )
    assert isinstance(props, dict)
    mtype = props.get("messageType")
    if mtype == "pong":
        topic.last_pong = _now_iso()
    elif mtype == "response" and "api_info" in props:
        try:
            topic.api_info = loads_strict_json(props["api_info"])
        except (TypeError, ValueError):
            return _status_ack(
                "the api_info property is not JSON text", message_id, context
            )
    return _status_ack("ok", message_id, context)


def stats(topics: dict[str, Topic]) -> dict[str, Any]:
    """What ``GET /topics`` returns: topics, subscriptions, backlogs."""
    listed = []
    for topic in sorted(topics.values(), key=lambda t: t.name.full):
        subs = []
        for sub in sorted(topic.subscriptions.values(), key=lambda s: s.name):
            unacked = sub.unacked
            subs.append(
                {
                    "name": sub.name,
                    "type": sub.type,
                    "durable": sub.durable,
                    "consumers": len(sub.consumers),
                    "backlog": len(sub.backlog) + unacked,
                    "unacked": unacked,
                }
            )
        listed.append(
            {
                "topic": topic.name.full,
                "name": topic.name.local,
                "persistent": topic.name.persistent,
                "producers": topic.producers,
                "published": topic.published,
                "held_bytes": topic.held_bytes,
                "last_pong": topic.last_pong,
                "api_info": topic.api_info is not None,
                "subscriptions": subs,
            }
        )
    return {"topics": listed}


def counts(topics: dict[str, Topic], held_bytes: int) -> dict[str, int]:
    """Numbers of topics, producers and consumers, for ``GET /health``."""
    return {
        "topics": len(topics),
        "producers": sum(t.producers for t in topics.values()),
        "consumers": sum(
            len(s.consumers) for t in topics.values() for s in t.subscriptions.values()
        ),
        "held_bytes": held_bytes,
    }
