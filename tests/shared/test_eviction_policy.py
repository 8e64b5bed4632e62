"""The pure verdict on a Redis `maxmemory-policy` (shared/preflight/eviction.py): only noeviction passes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.preflight.eviction import Verdict, refusal, unreadable_warning, verdict

# Every policy Redis 7 knows (redis.conf, "maxmemory-policy").
EVICTING = (
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
SERVER = "Redis at redis://cache.internal:6379/0 (REDIS_URL: value locks)"


def test_noeviction_keeps_every_key() -> None:
    assert verdict("noeviction") is Verdict.KEEPS_EVERY_KEY


@pytest.mark.parametrize("policy", EVICTING)
def test_every_other_policy_of_redis_can_evict(policy: str) -> None:
    """volatile-* too: it evicts the keys with a TTL, which are the held locks and the post ledger."""
    assert verdict(policy) is Verdict.CAN_EVICT


@pytest.mark.parametrize("policy", [None, "", "   "])
def test_no_value_is_unreadable_not_safe(policy: str | None) -> None:
    assert verdict(policy) is Verdict.UNREADABLE


def test_a_policy_redis_may_add_later_is_refused() -> None:
    assert verdict("allkeys-lrm") is Verdict.CAN_EVICT


@given(st.text(min_size=1).filter(str.strip))
def test_only_noeviction_in_any_case_or_spacing_passes(policy: str) -> None:
    expected = Verdict.KEEPS_EVERY_KEY if policy.strip().lower() == "noeviction" else Verdict.CAN_EVICT
    assert verdict(policy) is expected


@pytest.mark.parametrize(
    ("policy", "at_stake"),
    [
        ("allkeys-lru", "queued exports, held locks, the post ledger"),
        ("volatile-ttl", "evicts keys with a TTL when Redis is full: held locks and the post ledger"),
        ("no-eviction", "is not known to keep every key"),
    ],
)
def test_the_refusal_names_the_server_the_setting_what_is_at_stake_and_the_fix(policy: str, at_stake: str) -> None:
    message = refusal(SERVER, policy)
    assert message.startswith(f"{SERVER} has maxmemory-policy {policy}, which ")
    assert at_stake in message
    assert message.endswith(
        "set maxmemory-policy noeviction (in redis.conf, or CONFIG SET maxmemory-policy noeviction) and start again"
    )


def test_the_warning_says_what_could_not_be_read_and_what_to_make_sure_of() -> None:
    message = unreadable_warning(SERVER, "CONFIG GET was refused: unknown command 'CONFIG'")
    assert message.startswith(f"could not read maxmemory-policy of {SERVER}: CONFIG GET was refused")
    assert "starting anyway" in message and "Make sure it is noeviction" in message
