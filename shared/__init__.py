"""syncguard's domain, a package per domain (docs/design.md, "Which file does what").

`core` is pure (no I/O); `store` holds the engine, tables and migrations; `locks`, `directory`,
`exports`, `release`, `reports`, `tenants`, `queries` and `metrics` build on them; `cli` is the command
line. Nothing here imports `workers` or `api`: they are thin faces over this package.
"""
