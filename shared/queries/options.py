"""The options an operator reads errors with: categories, sort fields and directions, the default limit."""

from __future__ import annotations

from enum import StrEnum

DEFAULT_LIMIT = 500
PROPERTY_CONFLICT = "PropertyConflict"
ERROR_CATEGORIES = (PROPERTY_CONFLICT,)


class SortField(StrEnum):
    DISPLAY_NAME = "DisplayName"
    USER_PRINCIPAL_NAME = "UserPrincipalName"
    NONE = "None"


class SortDirection(StrEnum):
    ASCENDING = "Ascending"
    DESCENDING = "Descending"
