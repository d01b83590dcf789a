"""Keyed messages of a Shared subscription stay at one front of a cluster.

The fragments of one payload (a large request argument) share a ``key``;
the embedded broker gives all messages of a key to one consumer of a
``Shared`` subscription (see :mod:`dasf_geo.broker.core`). Across fronts,
NATS spreads messages one by one (queue groups, JetStream pulls), so the
front that first receives a message of a key claims the key in the
key-value bucket ``DASF_GEO_<cluster>_KEYS`` (entries live
:data:`KEY_TTL` seconds after the last message of the key); a front that
receives a message of a key another front owns forwards it there over core
NATS (subject ``dasf_geo.<cluster>.fwd.<front id>``, on the fronts' data
connections, :mod:`dasf_geo.broker.nats_data`) and, for a JetStream
message, acknowledges the original. Inside the owning front the core keeps
the key with one consumer, as on the embedded broker.

A forwarded message is delivered at most once: if the owning front dies
meanwhile, the payload it was collecting is lost with it (its receiver
fails on the fragment timeout and the caller may call again).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import TYPE_CHECKING, Any

from dasf_geo.broker.cluster_names import WireMessage, decode_message
from dasf_geo.exceptions import ProtocolError

if TYPE_CHECKING:
    from dasf_geo.broker.cluster_nats import Feed, NatsBinding
    from dasf_geo.broker.nats_wire import Msg

__all__ = ["KEY_TTL", "KeyRouter"]

logger = logging.getLogger(__name__)

#: seconds a key stays with its front after its last message
KEY_TTL = 60.0


class KeyRouter:
    """Claims keys for this front and forwards messages of others' keys.

    Args:
        binding: the front's NATS binding (connected).
    """

    def __init__(self, binding: NatsBinding) -> None:
        self.binding = binding
        self.kv: Any = None
        #: key name -> (owning front, when this front last confirmed it)
        self.owners: dict[str, tuple[str, float]] = {}
        self.sub: Any = None

    @property
    def bucket(self) -> str:
        """The key-value bucket of key owners."""
        return f"DASF_GEO_{self.binding.names.cluster}_KEYS"

    def forward_subject(self, front: str) -> str:
        """Where messages for ``front`` are forwarded to."""
        return f"{self.binding.names.prefix}.fwd.{front}"

    async def start(self) -> None:
        """Open (or create) the bucket; listen for forwarded messages."""
        from nats.js.api import KeyValueConfig

        js = self.binding.js
        try:
            self.kv = await js.key_value(self.bucket)
        except Exception:
            try:
                self.kv = await js.create_key_value(
                    KeyValueConfig(bucket=self.bucket, history=1, ttl=KEY_TTL)
                )
            except Exception:
                self.kv = await js.key_value(self.bucket)  # another front won
        assert self.binding.data is not None
        self.sub = self.binding.data.subscribe(
            self.forward_subject(self.binding.front_id), self._on_forward
        )

    def _name(self, feed: Feed, key: bytes) -> str:
        text = b"\x00".join((feed.topic.full.encode(), feed.subscription.encode(), key))
        return "key_" + hashlib.sha256(text).hexdigest()[:32]

    async def _owner(self, name: str) -> str:
        me = self.binding.front_id
        now = time.monotonic()
        seen = self.owners.get(name)
        if seen is not None and now - seen[1] < KEY_TTL / 4:
            return seen[0]
        owner = me
        try:
            if seen is not None and seen[0] == me:
                await self.kv.put(name, me.encode())  # still ours: refresh
            else:
                await self.kv.create(name, me.encode())
        except Exception:
            try:
                entry = await self.kv.get(name)
                owner = entry.value.decode("ascii", "replace") if entry.value else me
            except Exception as exc:  # the bucket cannot say: keep it here
                logger.debug("key owner of %s unknown: %s", name, exc)
        self.owners[name] = (owner, now)
        if len(self.owners) > 100_000:  # forget the oldest keys
            for old in sorted(self.owners, key=lambda k: self.owners[k][1])[:50_000]:
                del self.owners[old]
        return owner

    async def route(
        self,
        feed: Feed,
        wire: WireMessage,
        body: bytes | bytearray,
        msg: Any,
        count: int,
    ) -> bool:
        """True if this front delivers the message; False if it was forwarded.

        Only keyed messages of Shared subscriptions are routed; anything
        else stays here.
        """
        if wire.key is None or feed.sub_type != "Shared" or self.kv is None:
            return True
        owner = await self._owner(self._name(feed, wire.key))
        if owner == self.binding.front_id:
            return True
        headers = {
            "Dasf-Topic": feed.topic.full,
            "Dasf-Subscription": feed.subscription,
            "Dasf-Delivered": str(count),
        }
        try:
            assert self.binding.data is not None
            await self.binding.data.publish(
                self.forward_subject(owner), body, headers=headers
            )
        except Exception as exc:
            logger.warning("could not forward a message to front %s: %s", owner, exc)
            return True
        if msg is not None:
            await asyncio.shield(msg.ack())
        return False

    def _on_forward(self, msg: Msg) -> None:
        headers = msg.headers or {}
        topic = headers.get("Dasf-Topic")
        name = headers.get("Dasf-Subscription")
        for feed in list(self.binding.feeds):
            if feed.topic.full == topic and feed.subscription == name:
                try:
                    wire = decode_message(msg.data)
                except ProtocolError as exc:
                    logger.warning("dropped a forwarded message: %s", exc)
                    return
                count = headers.get("Dasf-Delivered", "0")
                feed.deliver(feed, wire, None, int(count) if count.isdigit() else 0)
                return
        logger.warning(
            "dropped a message forwarded for %s subscription %s: no consumer "
            "of it on this front any more",
            topic,
            name,
        )
