# One image for every syncguard process: the Celery worker (default), beat, the HTTP service
# (`uvicorn api.app:app`) and the `syncguard` CLI (the migration runs `syncguard db upgrade`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# The runtime dependencies only, pinned with hashes (requirements.lock; ./scripts/lock refreshes it),
# then the project itself with no dependencies of its own: no `[test]` extras, no tests, benchmarks or
# scripts (.dockerignore).
COPY requirements.lock pyproject.toml README.md ./
COPY shared ./shared
COPY workers ./workers
COPY api ./api
RUN pip install --require-hashes -r requirements.lock \
 && pip install . --no-deps \
 && rm -rf build *.egg-info \
 && useradd --system --uid 10001 --user-group --home-dir /app --no-create-home syncguard

# A numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001
EXPOSE 8000
# Exec form: Celery is PID 1 and gets the SIGTERM itself, which starts its warm shutdown.
CMD ["celery", "-A", "workers.app", "worker", "--hostname", "celery@%h", "--loglevel", "INFO"]
