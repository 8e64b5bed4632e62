"""Celery side of syncguard: the app, thin tasks that call into `shared`, routing and beat."""
