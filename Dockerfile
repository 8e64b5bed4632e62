# One image for every syncguard process: the worker (default), beat and the `syncguard` CLI
# (the migration Job runs `syncguard db upgrade`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY workers ./workers
RUN pip install . \
 && useradd --system --uid 10001 --user-group --home-dir /app --no-create-home syncguard

# A numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001
CMD ["celery", "-A", "workers.app", "worker", "--loglevel", "INFO"]
