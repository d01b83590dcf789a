"""A cluster front's producers: frames to NATS in order, acks in order.

:class:`ClusterProducer` is the producer connection of a
:class:`~dasf_geo.broker.cluster.ClusterBroker`: it reads a producer's
frames, sends them to NATS one behind the other (through
:meth:`~dasf_geo.broker.cluster.ClusterBroker.submit_frame`) and gives the
producer each ack in order; frames of a non-persistent topic wait while a
front with its consumers asks to pause (:mod:`dasf_geo.broker.cluster_flow`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from dasf_geo.broker.core import SendErrorCode, _ok, _send_error
from dasf_geo.broker.server import _Connection
from dasf_geo.exceptions import BrokerError

if TYPE_CHECKING:
    from dasf_geo.broker.cluster import ClusterBroker

__all__ = ["ClusterProducer"]

logger = logging.getLogger("dasf_geo.broker.cluster")

#: bytes of a producer's frames waiting for NATS before its socket pauses
_PRODUCER_QUEUE_BYTES = 8 * 1024 * 1024
#: bytes a producer of a non-persistent topic publishes before the front
#: reads what NATS sent it (a pause of the topic, see cluster_flow)
_BURST_BYTES = 1024 * 1024
#: persistent messages of one producer sent to JetStream and not yet confirmed
_MAX_UNCONFIRMED = 256


def _done(loop: asyncio.AbstractEventLoop, ack: bytes) -> asyncio.Future[bytes]:
    """A future that already holds ``ack``."""
    fut: asyncio.Future[bytes] = loop.create_future()
    fut.set_result(ack)
    return fut


async def _ack_when_stored(
    stored: asyncio.Future[None], message_id: str, context: bytes | None
) -> bytes:
    """The ack frame of a message once JetStream answered for it."""
    try:
        await stored
    except BrokerError as exc:
        return _send_error(SendErrorCode.UNKNOWN, str(exc), context)
    except Exception as exc:  # a bug must not stall the producer's acks
        logger.exception("error confirming a message")
        return _send_error(
            SendErrorCode.UNKNOWN,
            f"the broker failed to handle the message: {exc}",
            context,
        )
    return _ok(message_id, context)


class ClusterProducer(_Connection):
    """A producer: frames go to NATS in order; each gets its ack, in order.

    Frames of a persistent topic are sent to JetStream one behind the other;
    their acks follow as JetStream confirms them (at most
    :data:`_MAX_UNCONFIRMED` frames, and :data:`_PRODUCER_QUEUE_BYTES`
    with those still queued, wait for it). Frames of a non-persistent topic
    wait while a front with its consumers asks to pause
    (:mod:`dasf_geo.broker.cluster_flow`).
    """

    broker: ClusterBroker
    flow_open: asyncio.Event | None = None

    def connected(self) -> None:
        assert self.route.topic is not None
        self.topic = self.core.add_producer(self.route.topic)
        self.queue: deque[bytes] = deque()
        self.queued = 0
        self.wake = asyncio.Event()
        #: (frame size, its ack to come) sent to NATS, in order
        self.unconfirmed: asyncio.Queue[tuple[int, asyncio.Future[bytes]]] = (
            asyncio.Queue(_MAX_UNCONFIRMED)
        )
        #: messages sent to NATS whose acks the producer has not had yet
        self.confirming = 0
        # set while no front asks this non-persistent topic to pause
        flow = self.broker.flow
        if not self.route.topic.persistent and flow is not None:
            self.flow_open = flow.watch(self.route.topic, self._update_reading)
        assert self.broker._loop is not None
        self.worker = self.broker._loop.create_task(self._run())
        self.acker = self.broker._loop.create_task(self._ack())

    def disconnected(self) -> None:
        self.worker.cancel()
        self.acker.cancel()
        self.queue.clear()
        self.core.remove_producer(self.topic)
        if self.flow_open is not None and self.broker.flow is not None:
            assert self.route.topic is not None
            self.broker.flow.unwatch(self.route.topic, self._update_reading)

    def message(self, data: bytes) -> None:
        self.queue.append(data)
        self.queued += len(data)
        self.wake.set()
        self._update_reading()

    def wants_pause(self) -> bool:
        paused = self.flow_open is not None and not self.flow_open.is_set()
        return self.write_blocked or paused or self.queued >= _PRODUCER_QUEUE_BYTES

    def _acked(self, size: int, ack: bytes) -> None:
        self.queued -= size
        self.send(ack)
        self._update_reading()

    async def _run(self) -> None:
        assert self.route.topic is not None
        name = self.route.topic
        loop = asyncio.get_running_loop()
        burst = 0
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.queue:
                if self.flow_open is not None:
                    if burst >= _BURST_BYTES:
                        # let a pause from another front in (publishing
                        # does not wait while the socket takes it)
                        burst = 0
                        await asyncio.sleep(0)
                    while not self.flow_open.is_set():
                        await self.flow_open.wait()
                data = self.queue.popleft()
                burst += len(data)
                try:
                    ack = await self.broker.submit_frame(name, data)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a bug must not cost other clients
                    logger.exception("error publishing to %s", name)
                    ack = _done(
                        loop,
                        _send_error(
                            SendErrorCode.UNKNOWN,
                            f"the broker failed to handle the message: {exc}",
                            None,
                        ),
                    )
                if ack.done() and not self.confirming:
                    self._acked(len(data), ack.result())
                else:
                    self.confirming += 1
                    await self.unconfirmed.put((len(data), ack))

    async def _ack(self) -> None:
        while True:
            size, ack = await self.unconfirmed.get()
            try:
                frame = await ack
            except asyncio.CancelledError:
                if not ack.cancelled():
                    raise  # this connection is going away
                frame = _send_error(
                    SendErrorCode.UNKNOWN, "the broker front is stopping", None
                )
            self.confirming -= 1
            self._acked(size, frame)
