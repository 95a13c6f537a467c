# syntax=docker/dockerfile:1
# One image per service: docker build --build-arg SERVICE=<ingest|analyze|render|notify> .
# The app runs from /app (services/ + schemas/, as in the repository); its runtime
# dependencies live in /opt/venv, pinned by constraints.txt. See terraform/README.md.

# Slim Debian base with the Python the project pins (requires-python 3.11). For fully
# reproducible builds pin the digest too: python:3.11-slim-bookworm@sha256:<digest>.
FROM python:3.11-slim-bookworm AS deps
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml constraints.txt ./
COPY services/ services/
# Runtime dependencies only (no [local]/[dev]/[bench] extras). The project itself is then
# uninstalled again: the code runs from /app, so there is exactly one copy of it.
RUN /opt/venv/bin/pip install -c constraints.txt . \
    && /opt/venv/bin/pip uninstall --yes mediarelay

FROM python:3.11-slim-bookworm
ARG SERVICE
RUN test -n "${SERVICE}" || (echo "build with --build-arg SERVICE=<ingest|analyze|render|notify>" >&2; exit 1) \
    && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app
# The services that face clients run nginx in front of gunicorn (services/common/front.py:
# slow clients are buffered there, never given a request thread).
RUN case "${SERVICE}" in ingest|console) \
        apt-get update && apt-get install -y --no-install-recommends nginx-light \
        && rm -rf /var/lib/apt/lists/* ;; esac
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
COPY services/ services/
COPY schemas/ schemas/
RUN test -f "services/${SERVICE}/app.py" || (echo "no such service: ${SERVICE}" >&2; exit 1)

ENV SERVICE=${SERVICE} \
    PATH=/opt/venv/bin:${PATH} \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8080
# glibc keeps freed image buffers per thread arena unless told otherwise; with these,
# render's peak memory falls back between encode phases (measured in bench/render).
ENV MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=1048576
USER 10001:10001
EXPOSE 8080

# Cloud Run uses its own startup probe on the same path (terraform/modules/cloud_run_service);
# this one serves `docker run` and compose.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=2)"]

# exec: the front replaces the shell and is PID 1, so it receives SIGTERM from Cloud Run; it
# execs gunicorn itself for push services, and supervises nginx + gunicorn for ingest.
ENTRYPOINT ["/bin/sh", "-c", "exec python -m services.common.front \"services.${SERVICE}.app:create_app()\""]
