"""Placeholder UPNs: a random free `prefix+NNNN`, found cheaply while most are free and found at all
while only one is."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import delete, insert, select

from shared.core.values import placeholder_upn, value_key
from shared.directory.objects import TenantInfo
from shared.directory.placeholders import PlaceholdersExhausted, _placeholder_digit_batches, mint_placeholder
from shared.exports.applier import ExportApplier
from shared.store.engine import get_engine
from shared.store.tables import ClaimedValue, DirectoryObject, Tenant, utcnow
from tests.conftest import export_line

WANTED = "crowded@contoso.com"


def test_the_batches_try_every_suffix_exactly_once_a_random_32_first() -> None:
    batches = list(_placeholder_digit_batches())
    every = [digit for batch in batches for digit in batch]
    assert sorted(every) == list(range(10_000))
    assert len(batches[0]) == 32 and all(len(batch) <= 32 for batch in batches)
    assert {tuple(next(_placeholder_digit_batches())) for _ in range(5)} != {tuple(batches[0])}, "not random"


@pytest.fixture
def crowded(tenant: Tenant, applier: ExportApplier) -> Iterator[tuple[TenantInfo, int]]:
    """The tenant and an object to hang claims on; the placeholders it claims go away afterwards."""
    applier.apply(export_line(tenant.name, "squatter", userPrincipalName="squatter@contoso.com"))
    with get_engine().connect() as connection:
        object_pk = connection.scalar(
            select(DirectoryObject.id).where(
                DirectoryObject.tenant_id == tenant.id, DirectoryObject.source_anchor == "squatter"
            )
        )
    yield TenantInfo.of(tenant), int(object_pk)
    with get_engine().begin() as connection:
        connection.execute(delete(ClaimedValue).where(ClaimedValue.tenant_id == tenant.id))


def _claim_placeholders(tenant: TenantInfo, object_pk: int, digits: range | list[int]) -> None:
    now = utcnow()
    rows = [
        {
            "tenant_id": tenant.id,
            "key": value_key(placeholder_upn(WANTED, d, tenant.initial_domain)),
            "object_pk": object_pk,
            "claimed_at": now,
        }
        for d in digits
    ]
    with get_engine().begin() as connection:
        connection.execute(insert(ClaimedValue), rows)


def test_the_one_free_suffix_left_is_found(crowded: tuple[TenantInfo, int]) -> None:
    tenant, object_pk = crowded
    _claim_placeholders(tenant, object_pk, [d for d in range(10_000) if d != 4_321])
    with get_engine().begin() as connection:
        assert mint_placeholder(connection, tenant, WANTED, avoid=()) == placeholder_upn(
            WANTED, 4_321, tenant.initial_domain
        )


def test_no_free_suffix_is_an_error_an_operator_can_read(crowded: tuple[TenantInfo, int]) -> None:
    tenant, object_pk = crowded
    _claim_placeholders(tenant, object_pk, range(10_000))
    with get_engine().begin() as connection, pytest.raises(PlaceholdersExhausted, match="all 10,000 placeholders"):
        mint_placeholder(connection, tenant, WANTED, avoid=())


def test_an_export_whose_proposed_placeholder_is_taken_gets_the_one_still_free(
    tenant: Tenant, applier: ExportApplier, crowded: tuple[TenantInfo, int]
) -> None:
    """A placeholder is proposed at random and claimed without a look-up; when the claim finds it
    taken (here 9,999 times in 10,000), a free one is minted instead."""
    tenant_info, object_pk = crowded
    _claim_placeholders(tenant_info, object_pk, [d for d in range(10_000) if d != 4_321])
    applier.apply(export_line(tenant.name, "holder", userPrincipalName=WANTED))
    outcome = applier.apply(export_line(tenant.name, "waiter", userPrincipalName=WANTED))
    assert outcome.status == "applied" and outcome.quarantined == (value_key(WANTED),)
    with get_engine().connect() as connection:
        upn, held = connection.execute(
            select(DirectoryObject.upn, ClaimedValue.key)
            .join(ClaimedValue, ClaimedValue.object_pk == DirectoryObject.id)
            .where(DirectoryObject.tenant_id == tenant.id, DirectoryObject.source_anchor == "waiter")
        ).one()
    assert upn == placeholder_upn(WANTED, 4_321, tenant.initial_domain)
    assert held == value_key(upn), "the object shows the placeholder it holds"
