"""Which Redis `maxmemory-policy` syncguard can run on: `noeviction`, and nothing else.

Every key syncguard keeps in Redis matters until it is used. The queued and the unacknowledged exports
(kombu's lists and hash) have no TTL; the value locks, the post ledger, the crash counters and beat's
lock have one. An `allkeys-*` policy may evict any of them once Redis reaches `maxmemory`; a
`volatile-*` policy evicts exactly the keys with a TTL, that is the held locks and the ledger. Only
`noeviction` makes a full Redis refuse writes instead, which workers retry and the API answers with 503.
A policy not named here is refused as well: nothing says it keeps every key. The verdict does not
look at `maxmemory`: 0 (no limit) evicts nothing today, but one `CONFIG SET maxmemory` would change that
at run time without a restart, and nothing would check again.
"""

from __future__ import annotations

from enum import Enum

SETTING = "maxmemory-policy"
SAFE_POLICY = "noeviction"
FIX = f"set {SETTING} {SAFE_POLICY} (in redis.conf, or CONFIG SET {SETTING} {SAFE_POLICY}) and start again"


class Verdict(Enum):
    KEEPS_EVERY_KEY = "keeps every key"
    CAN_EVICT = "can evict"
    UNREADABLE = "unreadable"


def verdict(policy: str | None) -> Verdict:
    """`None` is a policy that could not be read (CONFIG renamed or not allowed, no answer)."""
    if policy is None or not policy.strip():
        return Verdict.UNREADABLE
    return Verdict.KEEPS_EVERY_KEY if policy.strip().lower() == SAFE_POLICY else Verdict.CAN_EVICT


def what_it_evicts(policy: str) -> str:
    """What is at stake under `policy`, in the operator's words."""
    name = policy.strip().lower()
    if name.startswith("allkeys-"):
        return "can evict any key when Redis is full: queued exports, held locks, the post ledger"
    if name.startswith("volatile-"):
        return "evicts keys with a TTL when Redis is full: held locks and the post ledger"
    return "is not known to keep every key (only noeviction is)"


def refusal(server: str, policy: str) -> str:
    """Why a process refuses to start on this server, and the fix."""
    return f"{server} has {SETTING} {policy.strip()}, which {what_it_evicts(policy)}; {FIX}"


def unreadable_warning(server: str, reason: str) -> str:
    return (
        f"could not read {SETTING} of {server}: {reason}; starting anyway. Make sure it is {SAFE_POLICY}: "
        "any other policy can evict queued exports and held locks when Redis is full"
    )
