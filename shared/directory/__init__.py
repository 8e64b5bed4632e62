"""The directory store's hot path: object rows, claims on unique values, entries, placeholders.

SQLAlchemy Core on the caller's connection, inside the transaction of one export or release.
"""
