"""Flow control of non-persistent topics across the fronts of a cluster.

The embedded broker pauses a producer while its topic holds
``max_topic_bytes`` of unacknowledged payload (see
:mod:`dasf_geo.broker.core`), so a fast backend replying a 100 MB Dataset
to a slower caller waits for it. Core NATS has no such back channel: a
front that receives faster than its consumers take would have to drop
what does not fit. So the fronts tell each other:

- a front whose consumers of a non-persistent topic hold more than a
  quarter of ``max_topic_bytes`` publishes ``pause <front id>`` on the topic's flow
  subject ``dasf_geo.<cluster>.flow.n.<tenant>.<namespace>.<topic>`` (on
  the data connection, :mod:`dasf_geo.broker.nats_data`), repeats it every
  :data:`RENEW_SECONDS` while that lasts, and publishes ``resume <front
  id>`` once they hold less than an eighth;
- a front with producers of the topic subscribes to its flow subject; while
  a pause of some front is in force, its producers' messages wait and
  their WebSocket is not read (as on the embedded broker). A pause not
  renewed within :data:`PAUSE_SECONDS` ends by itself, so a front that
  dies cannot stop a producer for good.

What was on its way when the pause went out (socket buffers, and what
NATS holds for the front: it does not slow a publisher down for a slow
subscriber) is kept, as the embedded broker keeps the frames it read
before it paused a producer, up to the front's ``ceiling_bytes`` in all;
a non-persistent message that arrives at a full topic without a pause in
force (its producers' front did not follow the pause within
:data:`PAUSE_SECONDS`) is dropped as before (at most once). Persistent topics
need none of this: fronts pull from JetStream only what their consumers
have room for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dasf_geo.broker.names import TopicName

if TYPE_CHECKING:
    from dasf_geo.broker.cluster_nats import NatsBinding
    from dasf_geo.broker.core import Topic
    from dasf_geo.broker.nats_data import Subscription
    from dasf_geo.broker.nats_wire import Msg

__all__ = ["PAUSE_SECONDS", "RENEW_SECONDS", "FlowControl"]

logger = logging.getLogger(__name__)

#: seconds a pause lasts unless its front renews it
PAUSE_SECONDS = 5.0
#: seconds between two renewals of a pause by the front that needs it
RENEW_SECONDS = 1.0


@dataclass(eq=False)
class _Watch:
    """A topic this front has producers of."""

    subject: str
    open: asyncio.Event = field(default_factory=asyncio.Event)
    #: front id -> monotonic time its pause ends
    holders: dict[str, float] = field(default_factory=dict)
    listeners: set[Callable[[], None]] = field(default_factory=set)
    sub: Subscription | None = None
    timer: asyncio.TimerHandle | None = None


class FlowControl:
    """Pauses and resumes producers of non-persistent topics cluster-wide.

    Args:
        binding: the front's NATS binding (connected).
        max_topic_bytes: the front's per-topic limit; pauses are asked for
            above a quarter of it and lifted below an eighth.
    """

    def __init__(self, binding: NatsBinding, max_topic_bytes: int) -> None:
        self.binding = binding
        self.high = max(1, max_topic_bytes // 4)
        self.low = max_topic_bytes // 8
        self._watches: dict[TopicName, _Watch] = {}
        #: topics this front asked to pause, with their local Topic
        self._pausing: dict[TopicName, Topic] = {}
        self._renewer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    def subject(self, topic: TopicName) -> str:
        """The flow subject of a non-persistent topic."""
        prefix = self.binding.names.prefix
        return f"{prefix}.flow.{self.binding._subject(topic)[len(prefix) + 1 :]}"

    # --- producing side -----------------------------------------------------

    def watch(self, topic: TopicName, listener: Callable[[], None]) -> asyncio.Event:
        """Follow the pauses of ``topic`` for a producer.

        Returns an event that is set while the producer may publish;
        ``listener`` is called whenever it changes.
        """
        watch = self._watches.get(topic)
        if watch is None:
            watch = _Watch(self.subject(topic))
            watch.open.set()
            data = self.binding.data
            if data is not None:
                watch.sub = data.subscribe(
                    watch.subject, lambda msg: self._on_flow(watch, msg)
                )
            self._watches[topic] = watch
        watch.listeners.add(listener)
        return watch.open

    def unwatch(self, topic: TopicName, listener: Callable[[], None]) -> None:
        """A producer of ``topic`` is gone."""
        watch = self._watches.get(topic)
        if watch is None:
            return
        watch.listeners.discard(listener)
        if watch.listeners:
            return
        del self._watches[topic]
        if watch.timer is not None:
            watch.timer.cancel()
        watch.open.set()
        if watch.sub is not None:
            self._spawn(watch.sub.unsubscribe())

    def _on_flow(self, watch: _Watch, msg: Msg) -> None:
        verb, _, front = bytes(msg.data).decode("ascii", "replace").partition(" ")
        if not front:
            return
        if verb == "pause":
            watch.holders[front] = time.monotonic() + PAUSE_SECONDS
        elif verb == "resume":
            watch.holders.pop(front, None)
        else:
            return
        self._update(watch)

    def _update(self, watch: _Watch) -> None:
        now = time.monotonic()
        for front, until in list(watch.holders.items()):
            if until <= now:
                del watch.holders[front]
        was_open = watch.open.is_set()
        if watch.timer is not None:
            watch.timer.cancel()
            watch.timer = None
        if watch.holders:
            watch.open.clear()
            delay = min(watch.holders.values()) - now
            loop = asyncio.get_running_loop()
            watch.timer = loop.call_later(delay, self._update, watch)
        else:
            watch.open.set()
        if was_open != watch.open.is_set():
            for listener in list(watch.listeners):
                listener()

    # --- consuming side -----------------------------------------------------

    def delivered(self, topic: Topic) -> None:
        """A non-persistent message was added to local ``topic``."""
        if topic.held_bytes >= self.high and topic.name not in self._pausing:
            self._pausing[topic.name] = topic
            self._signal(topic.name, b"pause")
            if self._renewer is None:
                self._renewer = asyncio.get_running_loop().create_task(self._renew())

    def pausing(self, topic: TopicName) -> bool:
        """True while this front asks the producers of ``topic`` to pause."""
        return topic in self._pausing

    def released(self, topic: Topic) -> None:
        """Local ``topic`` let go of a message."""
        if (
            topic.held_bytes < self.low
            and self._pausing.pop(topic.name, None) is not None
        ):
            self._signal(topic.name, b"resume")

    def _signal(self, topic: TopicName, verb: bytes) -> None:
        data = self.binding.data
        if data is None:
            return
        body = verb + b" " + self.binding.front_id.encode()
        self._spawn(self._publish(self.subject(topic), body))

    async def _publish(self, subject: str, body: bytes) -> None:
        data = self.binding.data
        assert data is not None
        try:
            await data.publish(subject, body)
        except Exception as exc:  # renewed later, or the pause runs out
            logger.debug("flow signal on %s not sent: %s", subject, exc)

    async def _renew(self) -> None:
        try:
            while self._pausing:
                await asyncio.sleep(RENEW_SECONDS)
                for name, topic in list(self._pausing.items()):
                    if topic.held_bytes < self.low:
                        del self._pausing[name]
                        self._signal(name, b"resume")
                    else:
                        self._signal(name, b"pause")
        finally:
            self._renewer = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Lift this front's pauses and forget the watches."""
        for name in list(self._pausing):
            self._signal(name, b"resume")
        self._pausing.clear()
        if self._renewer is not None:
            self._renewer.cancel()
        for watch in self._watches.values():
            if watch.timer is not None:
                watch.timer.cancel()
        self._watches.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*self._tasks), 2.0)
