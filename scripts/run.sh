#!/usr/bin/env bash
# `make run`: write a demo .env when there is none, check the settings and that the port is free, migrate,
# make a demo staff user (sandbox + DEBUG only), then run web (gunicorn) and the worker (manage.py worker:
# django-q2's cluster for the timers, and the lane for accepts and payouts) in the foreground. Ctrl-C stops
# them all (a second Ctrl-C kills).
#
#   scripts/run.sh [--dry-run]    --dry-run: everything before the database (the .env, the settings, the
#                                 port), then print the start line and exit
#
# Binds 127.0.0.1 unless SERVER_HOST says otherwise (environment or .env); port SERVER_PORT (8000).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

dry_run=0
case "${1:-}" in
  "") ;;
  --dry-run) dry_run=1 ;;
  *) echo "usage: scripts/run.sh [--dry-run]" >&2; exit 2 ;;
esac

export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-provision.settings.base}"
mkdir -p var

# Every manage.py command reads .env, so the README's commands work in a second terminal as written.
$BIN/python scripts/run_preflight.py dotenv
# The settings load, the port is free: or one line saying why not, before anything is migrated.
preflight=$($BIN/python scripts/run_preflight.py check)
mapfile -t info <<<"$preflight"
host=${info[0]} port=${info[1]} start_line=${info[2]}
export SERVER_HOST="$host"

if ((dry_run)); then
  echo "dry run: $start_line"
  exit 0
fi

$BIN/python manage.py check --fail-level ERROR >/dev/null
$BIN/python manage.py migrate --no-input -v 0
$BIN/python manage.py collectstatic --no-input -v 0
$BIN/python manage.py setup_schedules
$BIN/python manage.py sync_balances || true  # the payout lane syncs again, and retries within seconds
$BIN/python manage.py ensure_demo_user  # a new demo: the demo user books the sandbox's opening balances

# Each process runs in its own process group (job control is on while they start): Ctrl-C in the terminal
# reaches this script alone, which asks each process to stop with SIGTERM to its main process (gunicorn's
# master, the worker's), so each stops its own children in order. Not to the whole group: stock
# django-q2's sentinel dies at once on SIGTERM of its own. A second Ctrl-C, and
# anything left of a group once its main process has gone, gets SIGKILL: nothing is left behind.
pids=()
say() { echo "$@" 2>/dev/null || true; }  # the terminal may be gone (SIGHUP)
kill_groups() { for pid in "${pids[@]}"; do kill "-$1" -- "-$pid" 2>/dev/null || true; done; }
stop() {
  trap - EXIT INT TERM HUP
  trap 'say "killing"; kill_groups KILL' INT TERM HUP
  say "stopping web and worker (Ctrl-C again to kill them)"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do wait "$pid" 2>/dev/null || true; done
  done
  kill_groups KILL
  say "provision node stopped"
}
trap stop EXIT INT TERM HUP

set -m
$BIN/gunicorn provision.wsgi:application --bind "$host:$port" --workers 2 --threads 4 \
  --graceful-timeout 10 </dev/null &
pids+=($!)
$BIN/python manage.py worker </dev/null &
pids+=($!)
set +m

echo "$start_line"
# The first process to end (a crash, the port taken meanwhile) stops the others (the EXIT trap); its exit
# status is the script's. After Ctrl-C, stop() has run and the status is 130.
status=0
wait -n "${pids[@]}" || status=$?
exit "$status"
