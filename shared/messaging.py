"""Task names and queues, the contract between producers (in shared) and the Celery workers."""

APPLY_EXPORT = "syncguard.apply_export"
RELEASE_VALUES = "syncguard.release_values"

EXPORTS_QUEUE = "exports"
RELEASES_QUEUE = "releases"
MAINTENANCE_QUEUE = "maintenance"
RELEASE_RESOLVED_CONFLICTS = "syncguard.release_resolved_conflicts"
SEND_ERROR_REPORTS = "syncguard.send_error_reports"
REDELIVER_STRANDED_EXPORTS = "syncguard.redeliver_stranded_exports"
NOOP = "syncguard.noop"
