#!/usr/bin/env bash
# Run a command against PostgreSQL: TEST_DATABASE_URL when set, otherwise a throwaway cluster on
# loopback made from the system's PostgreSQL binaries (installing Debian's package when missing and
# root is available). The cluster is removed afterwards, also when the command fails.
set -euo pipefail

if [ -n "${TEST_DATABASE_URL:-}" ]; then
  exec "$@"
fi

find_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; fi
  done | sort -V | tail -n 1
}

bindir=$(find_bindir)
if [ -z "$bindir" ]; then
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    bindir=$(dirname "$(command -v initdb)")
  elif [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "with-postgres: installing Debian's postgresql package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    bindir=$(find_bindir)
  fi
fi
if [ -z "$bindir" ]; then
  echo "with-postgres: no PostgreSQL binaries found and cannot install them; set TEST_DATABASE_URL" >&2
  exit 1
fi

# PostgreSQL refuses to run as root: run the cluster as the 'postgres' system user (created by Debian's
# package, or here when missing).
run_as=()
if [ "$(id -u)" = "0" ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  run_as=(runuser -u postgres --)
fi

workdir=$(mktemp -d /tmp/provision-pg.XXXXXX)
chmod 755 "$workdir"
datadir="$workdir/data"
mkdir -p "$datadir"
[ ${#run_as[@]} -gt 0 ] && chown -R postgres "$workdir"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')

cleanup() {
  "${run_as[@]}" "$bindir/pg_ctl" -D "$datadir" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$workdir"
}
trap cleanup EXIT INT TERM

"${run_as[@]}" "$bindir/initdb" -D "$datadir" -U provision --auth=trust -E UTF8 --no-locale >/dev/null
"${run_as[@]}" "$bindir/pg_ctl" -D "$datadir" -w -l "$workdir/server.log" \
  -o "-h 127.0.0.1 -p $port -k $workdir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >/dev/null

export TEST_DATABASE_URL="postgres://provision@127.0.0.1:$port/provision"
"${run_as[@]}" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U provision provision 2>/dev/null \
  || "$bindir/createdb" -h 127.0.0.1 -p "$port" -U provision provision
echo "with-postgres: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
set +e
"$@"
status=$?
set -e
exit $status
