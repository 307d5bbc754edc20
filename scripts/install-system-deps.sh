#!/usr/bin/env bash
# System packages the tests, the demo and the benchmarks need beyond Go, Node
# and make:
#   postgresql  the server and its clients (psql, pgbench): tests, the demo
#               and bench-postgres run a real one (tests/helpers/postgres.ts)
#   pgbouncer   the peer bench-postgres measures Gatehouse against
#   curl        the HTTP end-to-end tests drive the Envoy stand-in with it
# Fast and silent when they are already installed. Debian/Ubuntu only;
# elsewhere it says what to install and fails.
set -euo pipefail

packages=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || packages+=(postgresql)
{ command -v pgbouncer || [ -x /usr/sbin/pgbouncer ]; } >/dev/null 2>&1 || packages+=(pgbouncer)
command -v curl >/dev/null || packages+=(curl)
if [ ${#packages[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: missing: ${packages[*]} (the PostgreSQL server is /usr/lib/postgresql/*/bin/initdb)." >&2
  echo "system-deps: install as root: apt-get install -y ${packages[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "system-deps: missing ${packages[*]} and this is not a Debian-like system; install the PostgreSQL server (initdb, pg_ctl, psql, pgbench under /usr/lib/postgresql/<version>/bin) and pgbouncer" >&2
  exit 1
fi

echo "system-deps: installing ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The packages' own services are not used (tests, the demo and the benches
# start their own servers), so their start-up is not needed; policy-rc.d may
# refuse it in containers.
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || { echo "system-deps: postgresql installed, but no initdb under /usr/lib/postgresql/*/bin" >&2; exit 1; }
{ command -v pgbouncer || [ -x /usr/sbin/pgbouncer ]; } >/dev/null 2>&1 || { echo "system-deps: pgbouncer installed, but no pgbouncer binary" >&2; exit 1; }
command -v curl >/dev/null || { echo "system-deps: curl installed, but no curl on PATH" >&2; exit 1; }
echo "system-deps: installed ${packages[*]}"
