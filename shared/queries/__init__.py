"""The read side: what an operator, the API and the web report ask about a tenant. Nothing here writes.

The package re-exports the read functions the faces call, so a face reads `queries.show_object(...)`
without knowing which module answers it.
"""

from shared.queries.conflict_pages import (
    ConflictedObject,
    ConflictPage,
    PagePosition,
    count_conflicted_objects_by_type,
    list_conflicted_objects,
)
from shared.queries.error_search import list_provisioning_errors
from shared.queries.failures import FailureRow, count_failures, list_failures
from shared.queries.objects import ObjectDetail, ObjectSummary, list_objects, show_object
from shared.queries.options import DEFAULT_LIMIT, ERROR_CATEGORIES, PROPERTY_CONFLICT, SortDirection, SortField
from shared.queries.provisioning_errors import ErrorFilter, ProvisioningErrorRow

__all__ = [
    "DEFAULT_LIMIT",
    "ERROR_CATEGORIES",
    "PROPERTY_CONFLICT",
    "ConflictPage",
    "ConflictedObject",
    "ErrorFilter",
    "FailureRow",
    "ObjectDetail",
    "ObjectSummary",
    "PagePosition",
    "ProvisioningErrorRow",
    "SortDirection",
    "SortField",
    "count_conflicted_objects_by_type",
    "count_failures",
    "list_conflicted_objects",
    "list_failures",
    "list_objects",
    "list_provisioning_errors",
    "show_object",
]
