"""graph indexes: what the Microsoft Graph face filters, orders and looks up by

Revision ID: 0005
Revises: 0003

Live objects of one class in id, display-name and UPN order (lower-cased: equality and $orderby
read one index); the lower-cased proxy addresses for
`proxyAddresses/any(x: x eq ...)`; lower-cased error values for `onPremisesProvisioningErrors/any(e:
e/value eq ...)`. The expression indexes are PostgreSQL's only: on SQLite the Graph face reads without them.
"""

from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_directory_objects_graph_display_name": (
        "directory_objects (tenant_id, object_class, lower(display_name), id) WHERE deleted = false"
    ),
    "ix_directory_objects_graph_upn": (
        "directory_objects (tenant_id, object_class, lower(upn), id) WHERE deleted = false"
    ),
    "ix_directory_objects_graph_proxy_addresses": (
        "directory_objects USING gin ((lower(proxy_addresses::text)::jsonb) jsonb_path_ops)"
    ),
    "ix_provisioning_errors_graph_value": "provisioning_errors (tenant_id, lower(property_value))",
}


def upgrade() -> None:
    op.create_index(
        "ix_directory_objects_graph_id", "directory_objects", ["tenant_id", "object_class", "deleted", "id"]
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, definition in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {definition}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in reversed(INDEXES):
            op.execute(f"DROP INDEX {name}")
    op.drop_index("ix_directory_objects_graph_id", table_name="directory_objects")
