"""Which consumer of a subscription gets which message (sans-I/O).

The delivery policy of :class:`~dasf_geo.broker.core.BrokerCore`, as
functions over the data model (:mod:`dasf_geo.broker.model`):

- ``Exclusive`` and ``Failover`` send everything to the oldest connected
  consumer; ``Shared`` spreads messages round-robin over the consumers
  with room;
- a consumer with room holds fewer than ``receiverQueueSize`` unacked
  messages and less than the byte limit (one message always fits), also
  counting its client's quota; in pull mode it has permits left;
- messages with a ``key`` (the fragments of one payload share one) go to
  the consumer that holds earlier messages of that key, and for
  :data:`~dasf_geo.broker.model.KEY_AFFINITY` seconds after it acked the
  last one; such a message waits for that consumer's room while later
  messages may pass it (at most :data:`_MAX_SCAN` of them per dispatch).
"""

from __future__ import annotations

from collections.abc import Callable

from dasf_geo.broker.model import KEY_AFFINITY, Consumer, Subscription, _Entry

__all__ = ["deliver", "dispatch", "forget_key", "release_keys"]

#: Most backlog entries one dispatch looks at past messages that must wait.
_MAX_SCAN = 10_000


def dispatch(sub: Subscription, limit: int, new_id: Callable[[], str]) -> None:
    """Deliver what the consumers of ``sub`` have room for, in order.

    ``limit`` is the unacked bytes one consumer may hold
    (``max_inflight_bytes``); ``new_id`` makes the id of each delivery.
    """
    if not sub.backlog or not sub.consumers:
        return
    if sub.type == "Shared":
        _dispatch_shared(sub, limit, new_id)
        return
    # Exclusive and Failover: everything goes to the oldest consumer
    consumer = sub.consumers[0]
    while sub.backlog:
        key = sub.backlog[0].message.key
        continues = key is not None and key in sub.key_owners
        if not consumer.has_room(limit, continues):
            break
        deliver(sub, consumer, sub.backlog.popleft(), new_id())


def _dispatch_shared(sub: Subscription, limit: int, new_id: Callable[[], str]) -> None:
    """Round-robin over consumers with room; keyed messages stick.

    A message with a ``key`` goes to the consumer that holds unacked
    messages of the same key, if any (as Pulsar's Key_Shared does), so
    the fragments of one payload, which share a key, reach one consumer.
    Such a message waits for that consumer's room while later messages
    may pass it.
    """
    consumers = sub.consumers
    count = len(consumers)
    for c in consumers:
        if c.has_room(limit, continues_key=True):
            break
    else:
        return  # nobody can take anything: skip the scan
    waiting: list[_Entry] = []
    scanned = 0
    while sub.backlog and scanned < _MAX_SCAN:
        entry = sub.backlog[0]
        key = entry.message.key
        owner = None if key is None else sub.key_owners.get(key)
        if owner is not None:
            if not owner[0].has_room(limit, continues_key=True):
                waiting.append(sub.backlog.popleft())
                scanned += 1
                continue
            consumer = owner[0]
        else:
            for i in range(count):
                consumer = consumers[(sub._next + i) % count]
                if consumer.has_room(limit):
                    sub._next = (sub._next + i + 1) % count
                    break
            else:
                if not any(
                    owner.has_room(limit, continues_key=True)
                    for owner, _ in sub.key_owners.values()
                ):
                    break
                # nobody has room for new keys; owners may still take
                # messages of their keys further back
                waiting.append(sub.backlog.popleft())
                scanned += 1
                continue
        deliver(sub, consumer, sub.backlog.popleft(), new_id())
    sub.backlog.extendleft(reversed(waiting))


def deliver(sub: Subscription, consumer: Consumer, entry: _Entry, token: str) -> None:
    """Give ``entry`` to ``consumer`` as delivery ``token``; notify it if idle."""
    consumer.inflight[token] = entry
    consumer.add_held(entry.message.size)
    key = entry.message.key
    if key is not None:
        owner = sub.key_owners.get(key)
        sub.key_owners[key] = (consumer, 1 if owner is None else owner[1] + 1)
        sub.key_released.pop(key, None)
    if consumer.pull_mode:
        consumer.permits -= 1
    was_empty = not consumer.outbox
    consumer.outbox.append((token, entry))
    if was_empty and consumer.notify is not None:
        consumer.notify()


def forget_key(sub: Subscription, entry: _Entry, clock: Callable[[], float]) -> None:
    """One message of ``entry``'s key is no longer held by its consumer."""
    key = entry.message.key
    if key is None:
        return
    owner = sub.key_owners.get(key)
    if owner is not None:
        if owner[1] <= 1:
            # keep the key with its consumer for a while: a receiver
            # that acks fragments as they arrive must still get the rest
            sub.key_owners[key] = (owner[0], 0)
            sub.key_released[key] = clock()
        else:
            sub.key_owners[key] = (owner[0], owner[1] - 1)


def release_keys(sub: Subscription, now: float) -> None:
    """Forget keys without unacked messages for :data:`KEY_AFFINITY` s."""
    stale = [k for k, t in sub.key_released.items() if now - t >= KEY_AFFINITY]
    for key in stale:
        del sub.key_released[key]
        owner = sub.key_owners.get(key)
        if owner is not None and owner[1] == 0:
            del sub.key_owners[key]
