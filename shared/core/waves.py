"""The order in which a batch's exports may be written together without changing what they do.

A batch applies as if its exports ran one after another in message order. Exports that touch
different keys (their object, the values they want) cannot see each other, so they may be written
together; an export that shares a key with an earlier one must come after it. A *wave* is the
exports that share no key with an earlier export still waiting: written together, then the next
wave sees their writes. An export the bulk could not take goes one by one after every wave, and so
does every later export that shares a key with it, in message order.

Measured on the throughput bench: at 20 % conflicts (each conflicting export wants its neighbour's
values) every conflicting pair fell out of the bulk, 40 % of a batch applied one by one and the
conflicts cost 31 % of the rate; in waves a pair costs one more wave of a few statements.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Wave:
    """One step of a batch: what to write together now, what waits for a later wave, what goes alone."""

    together: list[int]
    later: list[int]
    alone: list[int]
    blocked: frozenset[str]  # the keys of everything that goes alone: a later export touching one goes alone too


def next_wave(pending: Sequence[tuple[int, Collection[str]]], blocked: Collection[str] = ()) -> Wave:
    """Split `pending` (index and keys, in message order) into the next wave and the rest.

    `blocked` are the keys of exports already sent to the one-by-one path: whatever touches them
    must follow those, so it goes alone too.
    """
    blocked_keys = set(blocked)
    claimed: set[str] = set()
    together: list[int] = []
    later: list[int] = []
    alone: list[int] = []
    for index, keys in pending:
        if blocked_keys.intersection(keys):
            alone.append(index)
            blocked_keys.update(keys)
        elif claimed.intersection(keys):
            later.append(index)
            claimed.update(keys)
        else:
            together.append(index)
            claimed.update(keys)
    return Wave(together, later, alone, frozenset(blocked_keys))
