"""conflict history: each conflict's events (opened, reported, released, dropped) and the reports sent

Revision ID: 0007
Revises: 0006

A provisioning-error entry lives only while its object waits; the history outlives it, for the web
report's conflict page, `syncguard object show` and the overview's 30-day chart. The conflicts open at
the time of the upgrade get their `opened` event from their entries (and `reported`, without a report,
when they went out in one).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sent_reports",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("tenant_id", Id, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("conflicts", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_sent_reports_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sent_reports")),
    )
    op.create_index(op.f("ix_sent_reports_tenant_id_sent_at"), "sent_reports", ["tenant_id", "sent_at"])
    op.create_table(
        "conflict_events",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("tenant_id", Id, nullable=False),
        sa.Column("object_pk", Id, nullable=False),
        sa.Column("key", sa.String(length=1123), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("property_name", sa.String(length=32), nullable=False),
        sa.Column("property_value", sa.String(length=1123), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("holder_object_id", sa.String(length=36), nullable=True),
        sa.Column("report_id", Id, nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_conflict_events_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["object_pk"],
            ["directory_objects.id"],
            name=op.f("fk_conflict_events_object_pk_directory_objects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["sent_reports.id"],
            name=op.f("fk_conflict_events_report_id_sent_reports"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflict_events")),
    )
    op.create_index(op.f("ix_conflict_events_object_pk_key_at"), "conflict_events", ["object_pk", "key", "at"])
    op.create_index(op.f("ix_conflict_events_tenant_id_at"), "conflict_events", ["tenant_id", "at"])
    op.execute(
        "INSERT INTO conflict_events (tenant_id, object_pk, key, kind, at, property_name, property_value, sequence,"
        " holder_object_id) SELECT e.tenant_id, e.object_pk, e.key, 'opened', e.occurred_at, e.property_name,"
        " e.property_value, o.last_sequence, e.conflicting_object_id"
        " FROM provisioning_errors e JOIN directory_objects o ON o.id = e.object_pk"
    )
    op.execute(
        "INSERT INTO conflict_events (tenant_id, object_pk, key, kind, at, property_name, property_value)"
        " SELECT tenant_id, object_pk, key, 'reported', reported_at, property_name, property_value"
        " FROM provisioning_errors WHERE reported_at IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_conflict_events_tenant_id_at"), table_name="conflict_events")
    op.drop_index(op.f("ix_conflict_events_object_pk_key_at"), table_name="conflict_events")
    op.drop_table("conflict_events")
    op.drop_index(op.f("ix_sent_reports_tenant_id_sent_at"), table_name="sent_reports")
    op.drop_table("sent_reports")
