"""Exclusive and Failover subscriptions across the fronts of a cluster.

The front that feeds an ``Exclusive`` or ``Failover`` subscription holds
its lease: a key in the JetStream key-value bucket
``DASF_GEO_<cluster>_LEASES`` whose entries expire ``lease`` seconds after
their last update. The holder refreshes it (every third of that); another
front creates it once it is gone (Failover takes over), and refuses an
``Exclusive`` consumer while a fresh lease of another front is known. A
watcher keeps every front's view of the leases; an expired lease leaves no
event, so an entry older than ``lease`` seconds counts as gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from dasf_geo.broker.cluster_names import ClusterNames
from dasf_geo.broker.names import TopicName
from dasf_geo.exceptions import BrokerError

if TYPE_CHECKING:
    from dasf_geo.broker.cluster_nats import Feed

__all__ = ["LeaseMixin"]

logger = logging.getLogger(__name__)


def _import_nats() -> Any:
    import nats

    return nats


class LeaseMixin:
    """The lease half of :class:`~dasf_geo.broker.cluster_nats.NatsBinding`."""

    names: ClusterNames
    front_id: str
    lease: float
    js: Any
    kv: Any
    holders: dict[str, tuple[str, float]]

    @property
    def url(self) -> str:  # pragma: no cover - NatsBinding's
        raise NotImplementedError

    async def _activate(self, feed: Feed) -> None:  # pragma: no cover
        raise NotImplementedError

    async def _deactivate(self, feed: Feed) -> None:  # pragma: no cover
        raise NotImplementedError

    async def _ensure_bucket(self) -> None:
        from nats.js.api import KeyValueConfig

        nats = _import_nats()
        bucket = self.names.lease_bucket
        try:
            self.kv = await self.js.key_value(bucket)
            return
        except (nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):
            pass
        except (asyncio.TimeoutError, nats.errors.Error) as exc:
            raise BrokerError(
                f"NATS at {self.url} did not open the bucket {bucket}: {exc}"
            ) from exc
        try:
            self.kv = await self.js.create_key_value(
                KeyValueConfig(bucket=bucket, history=1, ttl=self.lease)
            )
        except (asyncio.TimeoutError, nats.errors.Error) as exc:
            try:
                self.kv = await self.js.key_value(bucket)
            except Exception:
                raise BrokerError(
                    f"NATS at {self.url} refused the bucket {bucket}: {exc}"
                ) from exc

    def lease_holder(self, topic: TopicName, subscription: str) -> str | None:
        """The front holding the lease of a subscription, if another one does."""
        seen = self.holders.get(self.names.lease_key(topic, subscription))
        if seen is None or seen[0] == self.front_id:
            return None
        if time.monotonic() - seen[1] > self.lease:
            return None  # expired: its front is gone
        return seen[0]

    async def _try_lease(self, feed: Feed) -> None:
        nats = _import_nats()
        key = self.names.lease_key(feed.topic, feed.subscription)
        value = self.front_id.encode()
        try:
            if feed.lease_revision is None:
                feed.lease_revision = await self.kv.create(key, value)
            else:
                feed.lease_revision = await self.kv.update(
                    key, value, last=feed.lease_revision
                )
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.APIError):
            if feed.lease_revision is not None:
                logger.warning(
                    "lost the lease of %s subscription %s",
                    feed.topic,
                    feed.subscription,
                )
            feed.lease_revision = None
            await self._deactivate(feed)
            return
        except (asyncio.TimeoutError, nats.errors.Error) as exc:
            logger.debug("lease of %s: %s", feed.topic, exc)
            return
        self.holders[key] = (self.front_id, time.monotonic())
        await self._activate(feed)

    async def _watch_leases(self) -> None:
        """Keep :attr:`holders` up to date (for refusing Exclusive consumers)."""
        while True:
            try:
                watcher = await self.kv.watchall()
                async for entry in watcher:
                    if entry is None:
                        continue
                    if entry.operation in ("DEL", "PURGE") or not entry.value:
                        self.holders.pop(entry.key, None)
                    else:
                        self.holders[entry.key] = (
                            entry.value.decode("ascii", "replace"),
                            time.monotonic(),
                        )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("lease watcher: %s", exc)
                await asyncio.sleep(1.0)
