"""Why an export cannot apply as sent, in words an operator can act on (a failed export's message)."""

from __future__ import annotations

import json

from sqlalchemy import Connection, select

from shared.core.decision import LegacyRejection
from shared.core.export import ErrorCode, Export, ExportRejected
from shared.directory.objects import (
    ObjectRow,
)
from shared.store.tables import objects


def message_text(export: Export) -> str:
    return json.dumps(export.to_message(), ensure_ascii=False)


def class_change(export: Export, obj: ObjectRow) -> ExportRejected:
    return ExportRejected(
        ErrorCode.DATA_VALIDATION_FAILED,
        f"object {export.source_anchor!r} is a {obj.object_class}; an export cannot turn it into a "
        f"{export.object_class.value} (delete it first)",
        tenant=export.tenant,
        source_anchor=export.source_anchor,
        object_class=export.object_class.value,
        raw=message_text(export),
    )


def legacy_rejection(connection: Connection, export: Export, rejection: LegacyRejection) -> ExportRejected:
    holder_ids = {c.holder for c in rejection.conflicts}
    rows = connection.execute(
        select(objects.c.object_id, objects.c.display_name).where(objects.c.object_id.in_(holder_ids))
    )
    names = {object_id: name for object_id, name in rows}
    parts = []
    for c in rejection.conflicts:
        holder = f"object {c.holder}" + (f" ({names[c.holder]})" if names.get(c.holder) else "")
        feature = (
            "DuplicateUPNResiliency"
            if c.property_name.value == "UserPrincipalName"
            else "DuplicateProxyAddressResiliency"
        )
        parts.append(
            f"{c.property_name.value} value {c.value!r} is already held by {holder}; {feature} is off for this tenant"
        )
    return ExportRejected(
        ErrorCode.ATTRIBUTE_VALUE_MUST_BE_UNIQUE,
        "; ".join(parts),
        tenant=export.tenant,
        source_anchor=export.source_anchor,
        object_class=export.object_class.value,
        raw=message_text(export),
    )
