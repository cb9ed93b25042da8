#!/usr/bin/env bash
# `make run`: migrate, make a demo staff user (sandbox + DEBUG only), then run web (gunicorn), the worker
# (django-q2 qcluster: the accept lane) and the payout lane in the foreground. Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

export DEBUG="${DEBUG:-true}"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-provision.settings.base}"
mkdir -p var

$BIN/python manage.py check --fail-level ERROR >/dev/null
$BIN/python manage.py migrate --no-input -v 0
$BIN/python manage.py collectstatic --no-input -v 0
$BIN/python manage.py setup_schedules
$BIN/python manage.py sync_balances || true  # the payout lane syncs again, and retries within seconds
$BIN/python manage.py ensure_demo_user  # a new demo: the demo user books the sandbox's opening balances

host=$($BIN/python -c 'import django; django.setup(); from django.conf import settings; print(settings.SERVER_HOST)')
port=$($BIN/python -c 'import django; django.setup(); from django.conf import settings; print(settings.SERVER_PORT)')

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "provision node stopped"
}
trap stop INT TERM EXIT

$BIN/gunicorn provision.wsgi:application --bind "$host:$port" --workers 2 --threads 4 \
  --graceful-timeout 10 &
pids+=($!)
$BIN/python manage.py qcluster &
pids+=($!)
$BIN/python manage.py payout_lane &
pids+=($!)

echo "provision node: web on http://$host:$port (admin at /admin/), worker and payout lane running; Ctrl-C stops all"
wait -n "${pids[@]}"
