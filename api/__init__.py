"""The HTTP service: the API for producers and admins, and the web error report (`uvicorn api.app:app`)."""
