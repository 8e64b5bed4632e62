"""search indexes: trigram GIN for free-text search, (tenant, time) for the default order

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TRIGRAM_INDEXES = [
    ("ix_directory_objects_display_name_trgm", "directory_objects", "display_name"),
    ("ix_directory_objects_upn_trgm", "directory_objects", "upn"),
    ("ix_provisioning_errors_property_value_trgm", "provisioning_errors", "property_value"),
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # pg_trgm is a trusted extension: a database owner may create it without being superuser.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, column in TRIGRAM_INDEXES:
        op.create_index(name, table, [column], postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"})
    op.create_index(
        "ix_provisioning_errors_tenant_id_occurred_at_id", "provisioning_errors", ["tenant_id", "occurred_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_provisioning_errors_tenant_id_occurred_at_id", table_name="provisioning_errors")
    for name, table, _ in reversed(TRIGRAM_INDEXES):
        op.drop_index(name, table_name=table)
