#!/usr/bin/env bash
# System packages the tests and the demo need beyond Go, Node and make:
# today only the PostgreSQL server (tests run a real one, see
# tests/helpers/postgres.ts). Fast and silent when it is already installed.
# Debian/Ubuntu only; elsewhere it says what to install and fails.
set -euo pipefail

if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  exit 0
fi

packages=(postgresql)
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: the PostgreSQL server is missing (no /usr/lib/postgresql/*/bin/initdb)." >&2
  echo "system-deps: install it as root: apt-get install -y ${packages[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "system-deps: the PostgreSQL server is missing and this is not a Debian-like system; install the PostgreSQL server (initdb, pg_ctl) under /usr/lib/postgresql/<version>/bin" >&2
  exit 1
fi

echo "system-deps: installing ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The package's own cluster is not used (tests start their own), so its
# service start-up is not needed; policy-rc.d may refuse it in containers.
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || { echo "system-deps: postgresql installed, but no initdb under /usr/lib/postgresql/*/bin" >&2; exit 1; }
echo "system-deps: installed $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"
