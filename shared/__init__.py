"""syncguard's domain: settings, schemas, decision logic, storage, locks and the command line.

Nothing in this package imports the Celery app; the workers package calls into it.
"""
