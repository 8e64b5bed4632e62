"""failed exports in their listing order: (tenant, last_failed, id)

Revision ID: 0008
Revises: 0007

The CLI, the API, the report email and the web report's failed-exports tab (and its CSV) all list a
tenant's failed exports newest first, the tab by keyset from a (last_failed, id) position. Without the
index each page sorted all of the tenant's rows (300,000 in the report-size test).
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

INDEX = "ix_failed_exports_tenant_last_failed_id"


def upgrade() -> None:
    op.create_index(INDEX, "failed_exports", ["tenant", "last_failed", "id"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="failed_exports")
