"""`apply_export` on real worker processes, real Redis and real PostgreSQL (docs/design.md §1, §2)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import delete, select

from shared.store.engine import transaction
from shared.store.tables import FailedExport, Tenant
from tests.conftest import export_line
from tests.workers.helpers import failures, object_view, post_and_wait, send_raw

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _workers(workers: object) -> None:
    """Every test here goes through the broker to real worker processes."""


def test_second_user_with_a_taken_upn_gets_a_placeholder_and_one_entry_naming_the_first(
    tenant: Tenant, redis_client: Redis
) -> None:
    post_and_wait(
        redis_client,
        [
            export_line(
                tenant.name,
                "bob-1",
                displayName="Bob One",
                userPrincipalName="bob@contoso.com",
                proxyAddresses=["SMTP:bob@contoso.com"],
            )
        ],
    )
    counts = post_and_wait(
        redis_client,
        [
            export_line(
                tenant.name,
                "bob-2",
                displayName="Bob Two",
                userPrincipalName="bob@contoso.com",
                proxyAddresses=["SMTP:bob@contoso.com"],
            )
        ],
    )
    first, second = object_view(tenant.name, "bob-1"), object_view(tenant.name, "bob-2")
    assert first is not None and second is not None
    assert counts == {"applied": 1}
    assert first.upn == "bob@contoso.com" and first.entries == []
    prefix, _, domain = second.upn.partition("@") if second.upn else ("", "", "")
    assert prefix.startswith("bob+") and len(prefix) == len("bob+1234") and prefix[4:].isdigit()
    assert domain == tenant.initial_domain
    assert second.proxy_addresses == []
    assert [(e["propertyName"], e["propertyValue"], e["conflictingObjectId"]) for e in second.entries] == [
        ("UserPrincipalName", "bob@contoso.com", first.object_id)
    ]
    assert failures(tenant.name) == []


def test_a_group_asking_for_a_users_smtp_address_is_created_without_it(tenant: Tenant, redis_client: Redis) -> None:
    post_and_wait(
        redis_client,
        [export_line(tenant.name, "ann", userPrincipalName="ann@contoso.com", proxyAddresses=["SMTP:ann@contoso.com"])],
    )
    post_and_wait(
        redis_client,
        [
            export_line(
                tenant.name,
                "sales",
                "Group",
                displayName="Sales",
                proxyAddresses=["SMTP:ann@contoso.com", "smtp:sales@contoso.com"],
            )
        ],
    )
    group, user = object_view(tenant.name, "sales"), object_view(tenant.name, "ann")
    assert group is not None and user is not None
    assert group.proxy_addresses == ["smtp:sales@contoso.com"]
    assert [(e["propertyName"], e["conflictingObjectId"]) for e in group.entries] == [
        ("ProxyAddresses", user.object_id)
    ]
    assert user.entries == []


def test_a_new_user_whose_proxy_address_a_group_holds_is_created_with_that_address_quarantined(
    tenant: Tenant, redis_client: Redis
) -> None:
    post_and_wait(redis_client, [export_line(tenant.name, "team", "Group", proxyAddresses=["SMTP:team@contoso.com"])])
    counts = post_and_wait(
        redis_client,
        [
            export_line(
                tenant.name,
                "tom",
                userPrincipalName="tom@contoso.com",
                proxyAddresses=["SMTP:tom@contoso.com", "smtp:team@contoso.com"],
            )
        ],
    )
    user = object_view(tenant.name, "tom")
    assert counts == {"applied": 1} and user is not None
    assert user.upn == "tom@contoso.com"
    assert user.proxy_addresses == ["SMTP:tom@contoso.com"]
    assert [e["propertyValue"] for e in user.entries] == ["smtp:team@contoso.com"]
    assert failures(tenant.name) == []


def test_two_new_groups_with_one_address_posted_together_are_both_created_on_the_first_attempt(
    tenant: Tenant, redis_client: Redis
) -> None:
    counts = post_and_wait(
        redis_client,
        [
            export_line(tenant.name, "g-a", "Group", proxyAddresses=["SMTP:all@contoso.com"]),
            export_line(tenant.name, "g-b", "Group", proxyAddresses=["SMTP:all@contoso.com"]),
        ],
    )
    a, b = object_view(tenant.name, "g-a"), object_view(tenant.name, "g-b")
    assert counts == {"applied": 2} and a is not None and b is not None
    holders = [g for g in (a, b) if "all@contoso.com" in g.held]
    waiters = [g for g in (a, b) if g.entries]
    assert len(holders) == 1 and len(waiters) == 1 and holders[0] is not waiters[0]
    assert waiters[0].entries[0]["conflictingObjectId"] == holders[0].object_id
    assert failures(tenant.name) == []


def test_out_of_order_delivery_ends_in_the_highest_sequence(tenant: Tenant, redis_client: Redis) -> None:
    newer = export_line(tenant.name, "eve", sequence=2, userPrincipalName="eve.new@contoso.com")
    older = export_line(tenant.name, "eve", sequence=1, userPrincipalName="eve.old@contoso.com")
    post_and_wait(redis_client, [newer])
    counts = post_and_wait(redis_client, [older])
    eve = object_view(tenant.name, "eve")
    assert counts == {"skipped": 1}
    assert eve is not None and eve.upn == "eve.new@contoso.com" and eve.last_sequence == 2
    assert eve.held == {"eve.new@contoso.com"}


def test_the_same_message_delivered_twice_changes_nothing(tenant: Tenant, redis_client: Redis) -> None:
    line = export_line(
        tenant.name,
        "joe",
        sequence=7,
        userPrincipalName="joe@contoso.com",
        proxyAddresses=["SMTP:joe@contoso.com", "X500:/o=contoso/cn=joe"],
    )
    post_and_wait(redis_client, [line])
    before = object_view(tenant.name, "joe")
    counts = post_and_wait(redis_client, [line])
    assert counts == {"skipped": 1}
    assert object_view(tenant.name, "joe") == before


def test_a_late_add_after_a_delete_does_not_bring_the_object_back(tenant: Tenant, redis_client: Redis) -> None:
    post_and_wait(redis_client, [export_line(tenant.name, "old", sequence=1, userPrincipalName="old@contoso.com")])
    post_and_wait(redis_client, [export_line(tenant.name, "old", sequence=3, operation="delete")])
    post_and_wait(redis_client, [export_line(tenant.name, "old", sequence=2, userPrincipalName="old@contoso.com")])
    view = object_view(tenant.name, "old")
    assert view is not None and view.deleted and view.held == set()


def test_case_never_makes_two_values_different(tenant: Tenant, redis_client: Redis) -> None:
    post_and_wait(
        redis_client,
        [export_line(tenant.name, "a", userPrincipalName="Bob@Contoso.com", proxyAddresses=["SMTP:Bob@Contoso.com"])],
    )
    post_and_wait(
        redis_client,
        [
            export_line(tenant.name, "b", userPrincipalName="bob@contoso.com"),
            export_line(tenant.name, "c", "Contact", proxyAddresses=["smtp:BOB@CONTOSO.COM"]),
        ],
    )
    b, c = object_view(tenant.name, "b"), object_view(tenant.name, "c")
    assert b is not None and c is not None
    assert b.upn is not None and "+" in b.upn and len(b.entries) == 1
    assert c.proxy_addresses == [] and len(c.entries) == 1


def test_x500_and_sip_duplicates_are_never_quarantined(tenant: Tenant, redis_client: Redis) -> None:
    shared = ["X500:/o=contoso/ou=same", "SIP:same@contoso.com"]
    post_and_wait(
        redis_client,
        [
            export_line(tenant.name, "x1", userPrincipalName="x1@contoso.com", proxyAddresses=shared),
            export_line(tenant.name, "x2", "Group", proxyAddresses=shared),
        ],
    )
    for anchor in ("x1", "x2"):
        view = object_view(tenant.name, anchor)
        assert view is not None and view.proxy_addresses == shared and view.entries == []


def test_the_same_upn_in_two_tenants_is_no_conflict(make_tenant: Callable[..., Tenant], redis_client: Redis) -> None:
    one, two = make_tenant(), make_tenant()
    post_and_wait(
        redis_client,
        [
            export_line(
                one.name, "same", userPrincipalName="same@contoso.com", proxyAddresses=["SMTP:same@contoso.com"]
            ),
            export_line(
                two.name, "same", userPrincipalName="same@contoso.com", proxyAddresses=["SMTP:same@contoso.com"]
            ),
        ],
    )
    for t in (one, two):
        view = object_view(t.name, "same")
        assert view is not None and view.upn == "same@contoso.com" and view.entries == []


def test_legacy_upn_mode_fails_the_export_and_leaves_the_object_uncreated(
    make_tenant: Callable[..., Tenant], redis_client: Redis
) -> None:
    legacy = make_tenant(upn_resiliency=False)
    post_and_wait(
        redis_client, [export_line(legacy.name, "first", displayName="First", userPrincipalName="dup@contoso.com")]
    )
    counts = post_and_wait(redis_client, [export_line(legacy.name, "second", userPrincipalName="dup@contoso.com")])
    assert counts == {"failed": 1}
    assert object_view(legacy.name, "second") is None
    (failure,) = failures(legacy.name)
    assert failure.error_code == "AttributeValueMustBeUnique" and failure.source_anchor == "second"
    assert "dup@contoso.com" in failure.message and "First" in failure.message
    # The same export failing again is counted, then a fixed export clears it.
    post_and_wait(redis_client, [export_line(legacy.name, "second", userPrincipalName="dup@contoso.com")])
    assert [f.attempts for f in failures(legacy.name)] == [2]
    post_and_wait(redis_client, [export_line(legacy.name, "second", sequence=2, userPrincipalName="fixed@contoso.com")])
    assert failures(legacy.name) == []
    view = object_view(legacy.name, "second")
    assert view is not None and view.upn == "fixed@contoso.com"


def test_a_refused_update_in_legacy_mode_leaves_the_object_as_it_was(
    make_tenant: Callable[..., Tenant], redis_client: Redis
) -> None:
    """The snapshot the pure property test cannot take: there a refusal writes nothing by construction."""
    legacy = make_tenant(upn_resiliency=False, proxy_resiliency=False)
    post_and_wait(
        redis_client,
        [
            export_line(legacy.name, "first", userPrincipalName="taken@contoso.com"),
            export_line(
                legacy.name,
                "second",
                displayName="Second",
                userPrincipalName="second@contoso.com",
                proxyAddresses=["SMTP:second@contoso.com"],
            ),
        ],
    )
    before = object_view(legacy.name, "second")
    counts = post_and_wait(
        redis_client,
        [
            export_line(
                legacy.name,
                "second",
                sequence=2,
                displayName="Renamed",
                userPrincipalName="taken@contoso.com",
                proxyAddresses=["SMTP:new@contoso.com"],
            )
        ],
    )
    assert counts == {"failed": 1}
    assert before is not None and before.upn == "second@contoso.com"
    assert object_view(legacy.name, "second") == before, "a refused export changed the object"
    (failure,) = failures(legacy.name)
    assert (failure.source_anchor, failure.error_code) == ("second", "AttributeValueMustBeUnique")


# "{t}" becomes the test's tenant name everywhere, also in the messages no tenant can claim: the test
# then finds its own failures by their text, never rows another test left.
INVALID_EXPORTS = [
    ("not json at all ({t})", "DataValidationFailed", "not valid JSON"),
    ('["{t}", 2]', "DataValidationFailed", "must be a JSON object"),
    (
        {"tenant": "{t}", "sourceAnchor": "p", "objectClass": "Printer", "operation": "add", "sequence": 1},
        "DataValidationFailed",
        "objectClass",
    ),
    (
        {
            "tenant": "{t}",
            "sourceAnchor": "g",
            "objectClass": "Group",
            "operation": "add",
            "sequence": 1,
            "attributes": {"userPrincipalName": "g@contoso.com"},
        },
        "DataValidationFailed",
        "only Users",
    ),
    (
        {
            "tenant": "{t}",
            "sourceAnchor": "n",
            "objectClass": "User",
            "operation": "add",
            "sequence": 1,
            "attributes": {"displayName": "No UPN"},
        },
        "DataValidationFailed",
        "needs attributes.userPrincipalName",
    ),
    (
        {
            "tenant": "{t}",
            "sourceAnchor": "m",
            "objectClass": "User",
            "operation": "add",
            "sequence": 1,
            "attributes": {"userPrincipalName": "a+b@contoso.com"},
        },
        "DataValidationFailed",
        "'+'",
    ),
    (
        {
            "tenant": "{t}",
            "sourceAnchor": "s",
            "objectClass": "Contact",
            "operation": "add",
            "sequence": 1,
            "attributes": {"proxyAddresses": ["SMTP:"]},
        },
        "DataValidationFailed",
        "no value after SMTP:",
    ),
    (
        {
            "tenant": "{t}",
            "sourceAnchor": "s2",
            "objectClass": "Contact",
            "operation": "add",
            "sequence": 1,
            "attributes": {"proxyAddresses": ["SMTP:not-an-address"]},
        },
        "DataValidationFailed",
        "not a valid SMTP address",
    ),
    (
        {
            "tenant": "{t}-does-not-exist",
            "sourceAnchor": "x",
            "objectClass": "User",
            "operation": "add",
            "sequence": 1,
            "attributes": {"userPrincipalName": "x@contoso.com"},
        },
        "DataValidationFailed",
        "does not exist",
    ),
    (
        {
            "tenant": "{t}",
            "sourceAnchor": "q",
            "objectClass": "User",
            "operation": "add",
            "sequence": "1",
            "attributes": {"userPrincipalName": "q@contoso.com"},
        },
        "DataValidationFailed",
        "sequence",
    ),
    (
        {
            "tenant": "{t}",
            "sourceAnchor": "big",
            "objectClass": "Contact",
            "operation": "add",
            "sequence": 1,
            "attributes": {"proxyAddresses": [f"smtp:a{i}@contoso.com" for i in range(301)]},
        },
        "LargeObject",
        "301 values",
    ),
    (
        {
            "tenant": "{t}",
            "sourceAnchor": "long",
            "objectClass": "User",
            "operation": "add",
            "sequence": 1,
            "attributes": {"userPrincipalName": "a" * 65 + "@contoso.com"},
        },
        "LargeObject",
        "65-character prefix",
    ),
]


def is_kept_as(raw: str | None, message: object) -> bool:
    """Whether a failure's stored text is `message` as it was posted (a JSON object compares as one)."""
    if raw is None or isinstance(message, str):
        return raw == message
    try:
        return bool(json.loads(raw) == message)
    except ValueError:
        return False


@pytest.fixture
def failures_naming_the_tenant(tenant: Tenant) -> Iterator[Callable[[], list[FailedExport]]]:
    """The failures whose stored text names `tenant`, also those filed under no tenant or an unknown
    one; removed afterwards, as the tenant fixture only removes those filed under its name."""
    mentions = FailedExport.raw.contains(tenant.name, autoescape=True)

    def read() -> list[FailedExport]:
        with transaction() as session:
            return list(session.scalars(select(FailedExport).where(mentions).order_by(FailedExport.id)))

    yield read
    with transaction() as session:
        session.execute(delete(FailedExport).where(mentions))


def test_every_class_of_invalid_export_is_recorded_with_its_code_and_the_worker_keeps_going(
    tenant: Tenant, redis_client: Redis, failures_naming_the_tenant: Callable[[], list[FailedExport]]
) -> None:
    messages: list[object] = []
    invalid: list[tuple[object, str, str]] = []
    for template, code, fragment in INVALID_EXPORTS:
        text = (json.dumps(template) if isinstance(template, dict) else template).replace("{t}", tenant.name)
        message = json.loads(text) if isinstance(template, dict) else text
        invalid.append((message, code, fragment))
        messages.append(message)
        messages.append(
            json.loads(
                export_line(tenant.name, f"ok-{len(messages)}", userPrincipalName=f"ok{len(messages)}@contoso.com")
            )
        )
    counts = send_raw(redis_client, messages)
    assert counts == {"failed": len(INVALID_EXPORTS), "applied": len(INVALID_EXPORTS)}
    recorded = failures_naming_the_tenant()
    assert len(recorded) == len(INVALID_EXPORTS), [f.raw for f in recorded]
    for message, code, fragment in invalid:
        kept = [f for f in recorded if is_kept_as(f.raw, message)]
        assert len(kept) == 1, f"{len(kept)} failures keep {str(message)[:60]} as it was posted"
        (row,) = kept
        assert row.error_code == code and fragment in row.message, f"{row.message} for {str(message)[:60]}"
    for index in range(1, len(messages), 2):
        view = object_view(tenant.name, f"ok-{index}")
        assert view is not None and not view.deleted


def test_a_worker_applies_a_stream_of_exports_in_batches_of_many(
    tenant: Tenant, redis_client: Redis, workers: Any
) -> None:
    """One transaction and one lock call per batch is what makes an export cheaper than a message."""
    starts = [log.stat().st_size if log.exists() else 0 for log in workers.logs]
    lines = [export_line(tenant.name, f"many-{i}", userPrincipalName=f"many-{i}@contoso.com") for i in range(300)]
    assert post_and_wait(redis_client, lines) == {"applied": 300}
    written = "".join(log.read_bytes()[start:].decode() for log, start in zip(workers.logs, starts, strict=True))
    sizes = [int(n) for n in re.findall(r"applied a batch of (\d+) exports", written)]
    assert sum(sizes) <= 300 and max(sizes, default=0) >= 10, sizes
