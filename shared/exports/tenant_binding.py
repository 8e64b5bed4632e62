"""Every write is bound to one tenant: an export that names another is refused, and filed under the
tenant it was sent for, never under the one it names.

The producer checks it when a post is bound (the HTTP API, `syncguard failures retry`), and the
worker checks it again for every message, against the `tenant` the message was sent with
(`shared.messaging.send_export`), so a retry, a redelivery or any other sender is held to it too.
"""

from __future__ import annotations

import json
from typing import Any

from shared.core.export import ErrorCode, Export, ExportRejected, parse_export
from shared.exports.failures import identity_of


def tenant_named(message: Any) -> str | None:
    """The tenant an export message names, when it names one usably; cheap for a decoded message."""
    if isinstance(message, dict):
        named = message.get("tenant")
        return named if isinstance(named, str) else None
    return identity_of(message)["tenant"]


def sent_for(bound: str | None, message: Any) -> str | None:
    """The tenant a message is bound to: the one it was sent for, or (an older message) the one it names."""
    return bound if bound is not None else tenant_named(message)


def other_tenant(export: Export, bound: str, raw: str) -> ExportRejected:
    """The refusal of a valid export that names another tenant than the one it was sent for."""
    return ExportRejected(
        ErrorCode.DATA_VALIDATION_FAILED,
        f"the export is for tenant {export.tenant!r} but was posted for tenant {bound!r}; "
        f"a token or a failed export of {bound!r} can only write {bound!r}",
        tenant=bound,
        source_anchor=export.source_anchor,
        object_class=export.object_class.value,
        raw=raw,
    )


def refusal(message: Any, bound: str | None, *, max_proxy_addresses: int) -> ExportRejected | None:
    """Why a message may not be applied for `bound`, filed under `bound`; None when it names `bound`.

    An invalid message that does not name `bound` is refused with its own validation error, but
    filed under `bound` all the same: nobody may file failures into another tenant's report either.
    """
    if bound is None or tenant_named(message) == bound:
        return None
    try:
        export = parse_export(message, max_proxy_addresses=max_proxy_addresses)
    except ExportRejected as rejected:
        rejected.tenant = bound
        return rejected
    raw = message if isinstance(message, str) else json.dumps(export.to_message(), ensure_ascii=False)
    return other_tenant(export, bound, raw)
