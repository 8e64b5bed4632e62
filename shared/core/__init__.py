"""The pure core: value rules, the export message and its validation, the decision. No I/O here.

Nothing in this package touches a database, Redis, Celery or HTTP (import-linter enforces it), so every
rule can be tested alone and by property tests.
"""
