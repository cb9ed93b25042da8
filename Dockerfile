# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /app
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml constraints.txt README.md ./
COPY provision ./provision
COPY orders ./orders
COPY balances ./balances
COPY psp ./psp
COPY devtools ./devtools
RUN python -m venv /venv && /venv/bin/pip install -c constraints.txt .

FROM python:3.11-slim
RUN useradd --system --create-home --uid 10001 provision
WORKDIR /app
COPY --from=build /venv /venv
COPY --chown=provision . .
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=provision.settings.base
# var/metrics: PROMETHEUS_MULTIPROC_DIR when compose shares it between web and worker (owned by the
# unprivileged user, so a named volume mounted there starts writable).
RUN mkdir -p var/metrics && chown provision var var/metrics \
 && DEBUG=true python manage.py collectstatic --no-input -v 0 && chown -R provision var
USER provision
EXPOSE 8000
# Liveness: the process answers (no database). docker-compose checks the web service's readiness
# (/health/ready) instead; see docs/operations.md.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('SERVER_PORT','8000'), timeout=2)"
# Migrate (under a PostgreSQL advisory lock: replicas may start together), then serve. Access lines come
# from the node's JSON log (gunicorn's text access log is off).
CMD ["sh", "-c", "python manage.py migrate_locked --no-input && exec gunicorn provision.wsgi:application --bind ${SERVER_HOST:-0.0.0.0}:${SERVER_PORT:-8000} --workers 2 --threads 4"]
