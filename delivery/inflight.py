"""Which claimed Messages may have reached the relay: so a crash names exactly those, not whole batches.

A runner claims a batch (hundreds of rows) but only the messages it has handed to the relay and
not yet recorded can go out twice after a crash. Before handing envelopes to the connection it
announces them here, a chunk ahead (one Redis call per chunk, not per message); when their
outcomes are written it settles them. When the watchdog takes back an expired lease it asks which
of the rows were announced and unsettled: only those are marked as possibly sent twice (and count
an attempt); the rest of the dead runner's batch was never submitted and goes back to the queue
unmarked.

One Redis set per Mailing. If Redis lost it (a flushed Redis), nothing can be told apart, so every
recovered row of that Mailing is named: the answer errs towards saying "maybe twice".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mailplatform.redis_cache import redis_client, redis_key

# A member that is never a Message id: the set exists (and this module's answers hold) while it is there.
_PRESENT = "-"
# The set outlives any lease by far; a Mailing quiet for this long has nothing in flight.
_KEEP_SECONDS = 7 * 86400
# Envelopes announced ahead of submission: one Redis call per this many messages.
CHUNK = 64


def _key(mailing_id: int) -> str:
    return redis_key("delivery", "mailing", mailing_id, "inflight")


def announce(mailing_id: int, ids: Iterable[int]) -> None:
    members = [str(i) for i in ids]
    if not members:
        return
    pipe = redis_client().pipeline()
    pipe.sadd(_key(mailing_id), _PRESENT, *members)
    pipe.expire(_key(mailing_id), _KEEP_SECONDS)
    pipe.execute()


def settle(mailing_id: int, ids: Iterable[int], pipe: Any = None) -> None:
    """Forget `ids` (their outcomes are written); on `pipe` (a Redis pipeline the caller executes)
    when given."""
    members = [str(i) for i in ids]
    if members:
        (redis_client() if pipe is None else pipe).srem(_key(mailing_id), *members)


def take_maybe_sent(mailing_id: int, ids: Iterable[int]) -> set[int]:
    """Of `ids` (rows taken back from a lost runner), those it may have submitted; forgets all of them."""
    ids = list(ids)
    if not ids:
        return set()
    pipe = redis_client().pipeline()
    pipe.sismember(_key(mailing_id), _PRESENT)
    for message_id in ids:
        pipe.srem(_key(mailing_id), str(message_id))
    present, *removed = pipe.execute()
    if not present:
        return set(ids)
    return {message_id for message_id, gone in zip(ids, removed, strict=True) if gone}
