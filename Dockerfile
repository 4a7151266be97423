# syntax=docker/dockerfile:1
# The service image: dependencies from the hashed lock file, the app as a wheel,
# a non-root user, nothing written outside /tmp (runs with a read-only root).
# It serves by default (CMD); the batch commands run in the same image with the
# command overridden: `bookrec train` (publishes the item model to MODEL_URI),
# `bookrec warm`, and the seed's `bookrec create-table/generate/import`.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
# Dependencies first, in their own layer: it is rebuilt only when the lock changes.
COPY requirements.lock /src/requirements.lock
RUN /opt/venv/bin/pip install --require-hashes -r /src/requirements.lock
COPY pyproject.toml README.md /src/
COPY domain /src/domain
COPY adapters /src/adapters
COPY graphql_api /src/graphql_api
# The app itself as a wheel (its build backend, setuptools, is fetched for the build only).
RUN /opt/venv/bin/pip install --no-deps /src

FROM ${PYTHON_IMAGE} AS runtime
# /models is only a mount point, owned by the user so that a fresh volume mounted
# there (compose's `models`) starts writable for `bookrec train`; unmounted, it
# sits on the read-only root and nothing can write to it.
RUN groupadd --system --gid 10001 bookrec \
    && useradd --system --uid 10001 --gid bookrec --no-create-home --home-dir /tmp --shell /usr/sbin/nologin bookrec \
    && install -d -o 10001 -g 10001 -m 0755 /models
COPY --from=builder /opt/venv /opt/venv
# /tmp is the one writable path (a tmpfs under compose, a task volume on ECS):
# the embedded SQLite default lives there, and no .pyc files are written.
# PROMETHEUS_MULTIPROC_DIR: uvicorn runs WEB_CONCURRENCY workers, so each writes its
# metrics to files there and /metrics (from any worker) adds them up; /tmp starts
# empty with each container, which is what prometheus-client needs.
# MODEL_CACHE_DIR: models read from S3 are downloaded there once per host (the
# workers share the copy); `bookrec train` also stages a version there before upload.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    SQLITE_PATH=/tmp/bookrec.db \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    MODEL_CACHE_DIR=/tmp/bookrec-models
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
# No curl in the slim image: the standard library does the probe (non-2xx raises, exit 1).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# uvicorn reads WEB_CONCURRENCY itself as its worker count (no --workers flag);
# each worker calls the factory and builds its own app and model snapshot.
CMD ["uvicorn", "graphql_api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--loop", "uvloop", "--http", "httptools"]
