"""What the Graph face's fast any() over the errors relies on, and that it answers as the EXISTS does.

`count_directory_objects` counts such a filter from the entries alone, and `list_directory_objects`
walks the entries in object order, without checking each entry's object: that is right only while an
entry carries its object's class and tenant, and a deleted object has no entries. The exports below
are applied by the applier a worker runs, so every entry is one the apply path wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis
from sqlalchemy import create_engine, func, or_, select, text

from shared.core.values import value_key
from shared.exports.applier import ExportApplier
from shared.locks.manager import LockManager
from shared.queries.graph_ast import Collection, Condition, Constant, Junction, parse_filter
from shared.queries.graph_directory import GraphQuery, Position, count_directory_objects, list_directory_objects
from shared.settings import get_settings
from shared.store.engine import transaction
from shared.store.migrate import alembic_config, upgrade
from shared.store.tables import DirectoryObject, ProvisioningError, Tenant
from shared.tenants.registry import TenantSpec, create_tenant
from tests.conftest import export_line

CLASSES = ("User", "Group", "Contact")
FILTERS = [
    "onPremisesProvisioningErrors/any(e:e/category eq 'PropertyConflict')",
    "onPremisesProvisioningErrors/any(e:e/propertyCausingError eq 'ProxyAddress')",
    "onPremisesProvisioningErrors/any(e:e/propertyCausingError eq 'UserPrincipalName')",
    "onPremisesProvisioningErrors/any(e:startswith(e/value, 'SMTP:shared'))",
    "onPremisesProvisioningErrors/any(e:e/value eq 'shared0@contoso.com')",
    "onPremisesProvisioningErrors/any()",
]


def apply(applier: ExportApplier, line: str) -> None:
    """Apply as a worker does, then the fast releases the commit asks for, as the worker sends them."""
    outcome = applier.apply(line)
    assert outcome.status in ("applied", "skipped", "failed"), outcome
    for key in outcome.freed_with_waiters:
        applier.release(outcome.tenant or "", key)


def entries_unlike_their_object(tenant: Tenant) -> list[Any]:
    """Entries whose object is deleted, of another class or of another tenant: there must be none."""
    with transaction() as session:
        return list(
            session.execute(
                select(ProvisioningError.key, ProvisioningError.object_class, DirectoryObject.object_class)
                .join(DirectoryObject, DirectoryObject.id == ProvisioningError.object_pk)
                .where(
                    ProvisioningError.tenant_id == tenant.id,
                    or_(
                        DirectoryObject.deleted.is_(True),
                        DirectoryObject.object_class != ProvisioningError.object_class,
                        DirectoryObject.tenant_id != ProvisioningError.tenant_id,
                    ),
                )
            )
        )


def entry_classes(tenant: Tenant, anchor: str) -> list[str]:
    with transaction() as session:
        return list(
            session.scalars(
                select(ProvisioningError.object_class)
                .join(DirectoryObject, DirectoryObject.id == ProvisioningError.object_pk)
                .where(DirectoryObject.tenant_id == tenant.id, DirectoryObject.source_anchor == anchor)
            )
        )


def answers(
    tenant: Tenant, collection: Collection, condition: Condition, top: int = 2, url: str | None = None
) -> tuple[int, list[str], int]:
    """(count, every object id paged through `top` at a time, the count asked on the last page)."""
    seen: list[str] = []
    after: Position | None = None
    with transaction(url) as session:
        while True:
            query = GraphQuery(collection, condition, top=top, after=after)
            page = list_directory_objects(session, tenant, query)
            seen += [o.object_id for o in page.objects]
            later_count = count_directory_objects(session, tenant, query)
            if not page.more:
                return count_directory_objects(session, tenant, GraphQuery(collection, condition)), seen, later_count
            after = Position(None, page.objects[-1].pk)


def assert_fast_answers_as_exists(tenant: Tenant, url: str | None = None) -> None:
    """Each filter alone takes the entries-only path; `and true` makes it the EXISTS on the objects."""
    for collection in Collection:
        for expression in FILTERS:
            fast = parse_filter(expression, collection)
            exists_path = Junction("and", fast, Constant(True))
            count, seen, later_count = answers(tenant, collection, fast, url=url)
            assert (count, seen, later_count) == answers(tenant, collection, exists_path, url=url), expression
            assert count == len(seen) == len(set(seen)) == later_count


def test_an_entry_carries_its_objects_class_on_both_insert_paths(tenant: Tenant, applier: ExportApplier) -> None:
    apply(applier, export_line(tenant.name, "holder", "Contact", proxyAddresses=["SMTP:shared0@contoso.com"]))
    # Claims something and waits for something: the entries ride in the claims' statement (the CTE).
    apply(
        applier,
        export_line(tenant.name, "group", "Group", proxyAddresses=["SMTP:own@contoso.com", "smtp:shared0@contoso.com"]),
    )
    # Only waits: nothing to claim, so the entries are a plain INSERT.
    apply(applier, export_line(tenant.name, "contact", "Contact", proxyAddresses=["SMTP:shared0@contoso.com"]))
    assert entry_classes(tenant, "group") == ["Group"]
    assert entry_classes(tenant, "contact") == ["Contact"]
    assert entries_unlike_their_object(tenant) == []


def test_a_tombstone_re_created_as_another_class_waits_with_its_new_class(
    tenant: Tenant, applier: ExportApplier
) -> None:
    """The only way an object's class changes; its row was locked (old class) before the update."""
    apply(applier, export_line(tenant.name, "holder", "Contact", proxyAddresses=["SMTP:shared0@contoso.com"]))
    for anchor in ("cte", "plain"):
        apply(applier, export_line(tenant.name, anchor, "User", userPrincipalName=f"{anchor}@contoso.com"))
        apply(applier, export_line(tenant.name, anchor, "User", sequence=2, operation="delete"))
    apply(
        applier,
        export_line(
            tenant.name, "cte", "Group", sequence=3, proxyAddresses=["SMTP:cte@contoso.com", "smtp:shared0@contoso.com"]
        ),
    )
    apply(
        applier, export_line(tenant.name, "plain", "Contact", sequence=3, proxyAddresses=["SMTP:shared0@contoso.com"])
    )
    assert entry_classes(tenant, "cte") == ["Group"]
    assert entry_classes(tenant, "plain") == ["Contact"]
    assert entries_unlike_their_object(tenant) == []
    assert_fast_answers_as_exists(tenant)


def test_a_deleted_object_keeps_no_entries_and_its_freed_value_goes_to_a_live_waiter(
    tenant: Tenant, applier: ExportApplier
) -> None:
    apply(applier, export_line(tenant.name, "holder", userPrincipalName="shared0@contoso.com"))
    for anchor in ("first", "second"):
        apply(
            applier,
            export_line(
                tenant.name,
                anchor,
                userPrincipalName="shared0@contoso.com",
                proxyAddresses=["SMTP:shared0@contoso.com"],
            ),
        )
    assert entry_classes(tenant, "first") and entry_classes(tenant, "second")
    apply(applier, export_line(tenant.name, "first", sequence=2, operation="delete"))
    apply(applier, export_line(tenant.name, "holder", sequence=2, operation="delete"))  # frees shared0 for a waiter
    assert entry_classes(tenant, "first") == entry_classes(tenant, "holder") == []
    assert entries_unlike_their_object(tenant) == []
    with transaction() as session:
        waiting = session.scalar(
            select(func.count()).select_from(ProvisioningError).where(ProvisioningError.tenant_id == tenant.id)
        )
    assert waiting == 0, "second took what the holder let go of; first, deleted, waited for nothing"
    assert_fast_answers_as_exists(tenant)


# One step of a directory's life: an object, its class, delete or not, and which of a few shared
# values it asks for, so that conflicts, deletes, releases and re-creations as another class mix.
steps = st.lists(
    st.tuples(
        st.integers(0, 5),
        st.sampled_from(CLASSES),
        st.sampled_from([False, False, False, True]),  # a delete in four
        st.integers(0, 1),
        st.lists(st.integers(0, 1), max_size=2, unique=True),
    ),
    min_size=1,
    max_size=24,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=steps)
def test_any_directory_history_leaves_entries_the_fast_path_may_trust(
    make_tenant: Callable[..., Tenant], applier: ExportApplier, history: list[tuple[int, str, bool, int, list[int]]]
) -> None:
    tenant = make_tenant()
    sequence = 0
    for anchor, object_class, is_delete, upn, proxies in history:
        sequence += 1
        attributes: dict[str, Any] = {"proxyAddresses": [f"SMTP:shared{p}@contoso.com" for p in proxies]}
        if object_class == "User":
            attributes["userPrincipalName"] = f"shared{upn}@contoso.com"
        operation = "delete" if is_delete else "add"
        apply(applier, export_line(tenant.name, f"o{anchor}", object_class, sequence, operation, **attributes))
    assert entries_unlike_their_object(tenant) == []
    assert_fast_answers_as_exists(tenant)


def test_an_insert_that_leaves_the_class_out_gets_the_objects_from_the_database(
    tenant: Tenant, applier: ExportApplier
) -> None:
    """Fixtures, benchmarks and an operator's SQL write entries too; a trigger fills what they leave out."""
    apply(applier, export_line(tenant.name, "waiter", "Contact", proxyAddresses=["SMTP:own@contoso.com"]))
    with transaction() as session:
        pk = session.scalar(
            select(DirectoryObject.id).where(
                DirectoryObject.tenant_id == tenant.id, DirectoryObject.source_anchor == "waiter"
            )
        )
        session.execute(
            text(
                "INSERT INTO provisioning_errors (tenant_id, object_pk, key, category, property_name, "
                "property_value, conflicting_object_id, occurred_at) VALUES (:tenant, :pk, :key, "
                "'PropertyConflict', 'ProxyAddresses', 'SMTP:x@contoso.com', :other, now())"
            ),
            {"tenant": tenant.id, "pk": pk, "key": value_key("x@contoso.com"), "other": "0" * 36},
        )
    assert entry_classes(tenant, "waiter") == ["Contact"]


def test_the_migration_gives_existing_entries_their_objects_class(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'syncguard.sqlite3'}"
    command.upgrade(alembic_config(url), "0005")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tenants (id, name, initial_domain, technical_contacts, upn_resiliency, "
                "proxy_resiliency, created_at) VALUES (1, 't', 't.onmicrosoft.com', '[]', 1, 1, '2024-01-01')"
            )
        )
        for pk, object_class in ((1, "Group"), (2, "Contact")):
            connection.execute(
                text(
                    "INSERT INTO directory_objects (id, tenant_id, source_anchor, object_id, object_class, "
                    "wanted_proxy_addresses, proxy_addresses, attributes, last_sequence, deleted, updated_at) "
                    "VALUES (:pk, 1, :anchor, :anchor, :class, '[]', '[]', '{}', 1, 0, '2024-01-01')"
                ),
                {"pk": pk, "anchor": f"a{pk}", "class": object_class},
            )
            connection.execute(
                text(
                    "INSERT INTO provisioning_errors (tenant_id, object_pk, key, category, property_name, "
                    "property_value, conflicting_object_id, occurred_at) VALUES (1, :pk, 'k', "
                    "'PropertyConflict', 'ProxyAddresses', 'SMTP:k', 'other', '2024-01-01')"
                ),
                {"pk": pk},
            )
    command.upgrade(alembic_config(url), "head")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT object_pk, object_class FROM provisioning_errors ORDER BY object_pk"))
        assert [tuple(row) for row in rows] == [(1, "Group"), (2, "Contact")]
    command.downgrade(alembic_config(url), "0005")
    command.upgrade(alembic_config(url), "head")


def test_the_embedded_sqlite_store_writes_the_class_and_answers_alike(
    tmp_path: Path, redis_client: Redis, make_tenant: Callable[..., Tenant]
) -> None:
    """SQLite has no trigger: there the apply path's own INSERT is all that names the class."""
    url = f"sqlite:///{tmp_path / 'syncguard.sqlite3'}"
    upgrade(url)
    name = make_tenant().name  # its name is free in Redis; the tenant itself is made again in SQLite
    with transaction(url) as session:
        tenant = create_tenant(session, TenantSpec(name, f"{name}.onmicrosoft.com"))
    settings = get_settings().model_copy(update={"database_url": url})
    on_sqlite = ExportApplier(LockManager(redis_client, ttl_ms=settings.lock_ttl_ms), settings)
    apply(on_sqlite, export_line(name, "holder", "Contact", proxyAddresses=["SMTP:shared0@contoso.com"]))
    apply(on_sqlite, export_line(name, "group", "Group", proxyAddresses=["SMTP:shared0@contoso.com"]))
    apply(
        on_sqlite,
        export_line(name, "user", userPrincipalName="u@contoso.com", proxyAddresses=["SMTP:shared0@contoso.com"]),
    )
    with transaction(url) as session:
        classes = session.execute(
            select(DirectoryObject.source_anchor, ProvisioningError.object_class)
            .join(DirectoryObject, DirectoryObject.id == ProvisioningError.object_pk)
            .order_by(DirectoryObject.source_anchor)
        )
        assert [tuple(row) for row in classes] == [("group", "Group"), ("user", "User")]
    assert_fast_answers_as_exists(tenant, url)


@pytest.mark.parametrize("collection", list(Collection))
def test_a_tenant_without_errors_counts_none(tenant: Tenant, collection: Collection) -> None:
    with transaction() as session:
        assert (
            count_directory_objects(session, tenant, GraphQuery(collection, parse_filter(FILTERS[0], collection))) == 0
        )
