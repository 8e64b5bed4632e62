"""SQLAlchemy models. The `claimed_values` primary key is the final uniqueness guard.

Redis locks make conflict decisions race-free in the normal case; a lock can still expire under a
paused worker, so the database refuses a second holder for any (tenant, value key) whatever happens.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Id = BigInteger().with_variant(Integer, "sqlite")  # SQLite only auto-increments INTEGER keys
Json = JSON().with_variant(JSONB(), "postgresql")


def _trigram(column: str) -> dict[str, Any]:
    """A trigram GIN index on PostgreSQL (substring search); a plain index on other databases."""
    return {"postgresql_using": "gin", "postgresql_ops": {column: "gin_trgm_ops"}}


def _graph_index(name: str, *columns: str, live: bool = False, **options: Any) -> Index:
    """An index of the Graph face (migration 0005), on PostgreSQL only; `live`: deleted rows left out."""
    expressions = [text(c) if "(" in c else c for c in columns]
    where = text("deleted = false") if live else None
    return Index(name, *expressions, postgresql_where=where, **options).ddl_if(dialect="postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    initial_domain: Mapped[str] = mapped_column(String(48))
    technical_contacts: Mapped[list[str]] = mapped_column(Json, default=list)
    upn_resiliency: Mapped[bool] = mapped_column(Boolean)
    proxy_resiliency: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DirectoryObject(Base):
    """A User, Group or Contact; a deleted one stays as a tombstone so late exports stay stale."""

    __tablename__ = "directory_objects"
    __table_args__ = (
        UniqueConstraint("tenant_id", "source_anchor"),
        # `errors list --search-string` matches display names and UPNs anywhere in the text: trigram GIN
        # indexes on PostgreSQL (plain indexes elsewhere) keep that fast over millions of objects.
        Index("ix_directory_objects_display_name_trgm", "display_name", **_trigram("display_name")),
        Index("ix_directory_objects_upn_trgm", "upn", **_trigram("upn")),
        # The Graph face (migration 0005): live objects of a class in id, name and UPN order (lower-cased:
        # equality and $orderby), and the lower-cased proxy addresses, for proxyAddresses/any(x: x eq ...).
        Index("ix_directory_objects_graph_id", "tenant_id", "object_class", "deleted", "id"),
        _graph_index(
            "ix_directory_objects_graph_display_name",
            "tenant_id",
            "object_class",
            "lower(display_name)",
            "id",
            live=True,
        ),
        _graph_index("ix_directory_objects_graph_upn", "tenant_id", "object_class", "lower(upn)", "id", live=True),
        _graph_index(
            "ix_directory_objects_graph_proxy_addresses",
            "(lower(proxy_addresses::text)::jsonb) jsonb_path_ops",
            postgresql_using="gin",
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    source_anchor: Mapped[str] = mapped_column(String(256))
    object_id: Mapped[str] = mapped_column(String(36), unique=True)
    object_class: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str | None] = mapped_column(String(256))
    wanted_upn: Mapped[str | None] = mapped_column(String(113))
    upn: Mapped[str | None] = mapped_column(String(113))
    wanted_proxy_addresses: Mapped[list[str]] = mapped_column(Json, default=list)
    proxy_addresses: Mapped[list[str]] = mapped_column(Json, default=list)
    attributes: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    last_sequence: Mapped[int] = mapped_column(BigInteger)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ClaimedValue(Base):
    """Who holds each UPN / SMTP value (and placeholder) of a tenant: one holder, ever."""

    __tablename__ = "claimed_values"
    __table_args__ = (Index(None, "object_pk"),)

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(1123), primary_key=True)
    object_pk: Mapped[int] = mapped_column(ForeignKey("directory_objects.id", ondelete="CASCADE"))
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProvisioningError(Base):
    """A `dirSyncProvisioningErrors` entry: a quarantined value the object waits for."""

    __tablename__ = "provisioning_errors"
    __table_args__ = (
        UniqueConstraint("object_pk", "key"),
        Index(None, "tenant_id", "key", "occurred_at"),
        Index(None, "tenant_id", "reported_at"),
        Index(None, "tenant_id", "occurred_at", "id"),  # errors list's default order, read with a LIMIT
        Index("ix_provisioning_errors_property_value_trgm", "property_value", **_trigram("property_value")),
        _graph_index("ix_provisioning_errors_graph_value", "tenant_id", "lower(property_value)"),
        # Migration 0006: a Graph any() over the errors counted from this index alone, in object order.
        Index(None, "tenant_id", "object_class", "object_pk", postgresql_include=["category", "property_name"]),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    object_pk: Mapped[int] = mapped_column(ForeignKey("directory_objects.id", ondelete="CASCADE"))
    object_class: Mapped[str] = mapped_column(String(16))  # the object's, which never changes while it waits
    key: Mapped[str] = mapped_column(String(1123))
    category: Mapped[str] = mapped_column(String(32), default="PropertyConflict")
    property_name: Mapped[str] = mapped_column(String(32))
    property_value: Mapped[str] = mapped_column(String(1123))
    conflicting_object_id: Mapped[str] = mapped_column(String(36))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class FailedExport(Base):
    """An export that did not apply: invalid, or refused in legacy mode. Kept until fixed."""

    __tablename__ = "failed_exports"
    __table_args__ = (
        Index(None, "tenant", "source_anchor"),
        Index(None, "tenant", "last_failed", "id"),  # migration 0008: every list of them, newest first, by keyset
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant: Mapped[str | None] = mapped_column(String(256))
    source_anchor: Mapped[str | None] = mapped_column(String(256))
    object_class: Mapped[str | None] = mapped_column(String(256))
    error_code: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    raw: Mapped[str | None] = mapped_column(Text)
    first_failed: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_failed: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=1)


class SentReport(Base):
    """An error-report email that went out; the `reported` events of a conflict's history name it."""

    __tablename__ = "sent_reports"
    __table_args__ = (Index(None, "tenant_id", "sent_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recipients: Mapped[str] = mapped_column(Text)  # comma-separated, as the email was addressed
    conflicts: Mapped[int] = mapped_column(Integer)  # new quarantines it reported
    failures: Mapped[int] = mapped_column(Integer)


class ConflictEventRow(Base):
    """One step of a conflict's history (a waiting object and one value): opened, reported, released
    (the waiter got the value) or dropped (it stopped asking). Kept CONFLICT_HISTORY_RETENTION_DAYS
    after the conflict ends; the provisioning-error entry itself goes when the conflict ends."""

    __tablename__ = "conflict_events"
    __table_args__ = (Index(None, "object_pk", "key", "at"), Index(None, "tenant_id", "at"))

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    object_pk: Mapped[int] = mapped_column(ForeignKey("directory_objects.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(1123))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    property_name: Mapped[str] = mapped_column(String(32))
    property_value: Mapped[str] = mapped_column(String(1123))
    sequence: Mapped[int | None] = mapped_column(BigInteger)
    holder_object_id: Mapped[str | None] = mapped_column(String(36))
    report_id: Mapped[int | None] = mapped_column(ForeignKey("sent_reports.id", ondelete="SET NULL"))


class ApiToken(Base):
    """A tenant's API token; only the SHA-256 of its secret is kept, so a database dump grants nothing."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index(None, "tenant_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(100))
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# Core handles for the hot path (`shared.directory`), which speaks SQLAlchemy Core rather than the ORM.
objects = cast(Table, DirectoryObject.__table__)
claims = cast(Table, ClaimedValue.__table__)
entries = cast(Table, ProvisioningError.__table__)
failures = cast(Table, FailedExport.__table__)
tenants = cast(Table, Tenant.__table__)
conflict_events = cast(Table, ConflictEventRow.__table__)
