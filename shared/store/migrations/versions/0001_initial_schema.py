"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 23:34:44.306736
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "failed_exports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=256), nullable=True),
        sa.Column("source_anchor", sa.String(length=256), nullable=True),
        sa.Column("object_class", sa.String(length=256), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("first_failed", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_failed_exports")),
    )
    with op.batch_alter_table("failed_exports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_failed_exports_tenant_source_anchor"), ["tenant", "source_anchor"], unique=False
        )

    op.create_table(
        "tenants",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("initial_domain", sa.String(length=48), nullable=False),
        sa.Column(
            "technical_contacts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("upn_resiliency", sa.Boolean(), nullable=False),
        sa.Column("proxy_resiliency", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("name", name=op.f("uq_tenants_name")),
    )
    op.create_table(
        "directory_objects",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source_anchor", sa.String(length=256), nullable=False),
        sa.Column("object_id", sa.String(length=36), nullable=False),
        sa.Column("object_class", sa.String(length=16), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=True),
        sa.Column("wanted_upn", sa.String(length=113), nullable=True),
        sa.Column("upn", sa.String(length=113), nullable=True),
        sa.Column(
            "wanted_proxy_addresses",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "proxy_addresses",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "attributes", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_directory_objects_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_objects")),
        sa.UniqueConstraint("object_id", name=op.f("uq_directory_objects_object_id")),
        sa.UniqueConstraint("tenant_id", "source_anchor", name=op.f("uq_directory_objects_tenant_id_source_anchor")),
    )
    op.create_table(
        "claimed_values",
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=1123), nullable=False),
        sa.Column("object_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["object_pk"],
            ["directory_objects.id"],
            name=op.f("fk_claimed_values_object_pk_directory_objects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_claimed_values_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "key", name=op.f("pk_claimed_values")),
    )
    with op.batch_alter_table("claimed_values", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_claimed_values_object_pk"), ["object_pk"], unique=False)

    op.create_table(
        "provisioning_errors",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("object_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=1123), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("property_name", sa.String(length=32), nullable=False),
        sa.Column("property_value", sa.String(length=1123), nullable=False),
        sa.Column("conflicting_object_id", sa.String(length=36), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["object_pk"],
            ["directory_objects.id"],
            name=op.f("fk_provisioning_errors_object_pk_directory_objects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_provisioning_errors_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provisioning_errors")),
        sa.UniqueConstraint("object_pk", "key", name=op.f("uq_provisioning_errors_object_pk_key")),
    )
    with op.batch_alter_table("provisioning_errors", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_provisioning_errors_tenant_id_key_occurred_at"),
            ["tenant_id", "key", "occurred_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_provisioning_errors_tenant_id_reported_at"), ["tenant_id", "reported_at"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("provisioning_errors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provisioning_errors_tenant_id_reported_at"))
        batch_op.drop_index(batch_op.f("ix_provisioning_errors_tenant_id_key_occurred_at"))

    op.drop_table("provisioning_errors")
    with op.batch_alter_table("claimed_values", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_claimed_values_object_pk"))

    op.drop_table("claimed_values")
    op.drop_table("directory_objects")
    op.drop_table("tenants")
    with op.batch_alter_table("failed_exports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_failed_exports_tenant_source_anchor"))

    op.drop_table("failed_exports")
