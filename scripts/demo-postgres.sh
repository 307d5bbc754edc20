#!/usr/bin/env bash
# The demo's own PostgreSQL (Debian's package), for `make demo`:
#   scripts/demo-postgres.sh start   create the cluster (once), start it on
#                                    127.0.0.1:$DEMO_PG_PORT (default 15433),
#                                    load scripts/demo-seed.sql (once), and set
#                                    the gateway roles' passwords from
#                                    $ORDERS_DB_PASSWORD / $STAGING_DB_PASSWORD
#   scripts/demo-postgres.sh stop    stop it (the data stays for next time)
#
# The cluster lives in .demo/postgres (its socket too); `make clean` removes
# it. initdb and the server refuse to run as root, so as root they run as
# the `postgres` OS user (the Debian package creates it). Over TCP every
# login needs a SCRAM password: only the gateway's roles have one, so the
# data is reached through Gatehouse (or with the password from .demo/).
set -euo pipefail
cd "$(dirname "$0")/.."

action=${1:-}
port=${DEMO_PG_PORT:-15433}
dir=$PWD/.demo/postgres
data=$dir/data

bin=$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1 || true)
[ -n "$bin" ] || { echo "demo-postgres: no PostgreSQL server (/usr/lib/postgresql/*/bin/initdb); run \`make system-deps\`" >&2; exit 1; }
bin=$(dirname "$bin")

as_server=()
if [ "$(id -u)" -eq 0 ]; then
  id -u postgres >/dev/null 2>&1 || { echo "demo-postgres: running as root, but there is no \"postgres\" OS user to run PostgreSQL as (the Debian package creates it)" >&2; exit 1; }
  as_server=(runuser -u postgres --)
fi
server() { "${as_server[@]}" "$@"; }
pg_ctl() { server "$bin/pg_ctl" -D "$data" "$@"; }
running() { [ -f "$data/PG_VERSION" ] && pg_ctl status >/dev/null 2>&1; }
# Superuser SQL over the cluster's own unix socket (trust), read from stdin.
sql() { server "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres "$@"; }
quote() { local s=${1//\'/\'\'}; printf "'%s'" "$s"; }

case "$action" in
  stop)
    if running; then
      pg_ctl -m fast -w stop >/dev/null
      echo "demo-postgres: stopped"
    fi
    exit 0
    ;;
  start) ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

: "${ORDERS_DB_PASSWORD:?demo-postgres: set ORDERS_DB_PASSWORD (the gateway role's password)}"
: "${STAGING_DB_PASSWORD:?demo-postgres: set STAGING_DB_PASSWORD (the gateway role's password)}"

mkdir -p "$dir"
chmod 700 "$dir"
if [ ${#as_server[@]} -gt 0 ]; then
  chown postgres: "$dir"
  server test -x "$dir" || { echo "demo-postgres: the postgres OS user cannot reach $dir; make the checkout's directories traversable (chmod o+x) or run the demo as a non-root user" >&2; exit 1; }
fi

version=$(basename "$(dirname "$bin")")
if [ -f "$data/PG_VERSION" ] && [ "$(cat "$data/PG_VERSION")" != "$version" ]; then
  echo "demo-postgres: $data was made by PostgreSQL $(cat "$data/PG_VERSION"), this is $version; remove .demo/postgres (make clean) and run the demo again" >&2
  exit 1
fi
if [ ! -f "$data/PG_VERSION" ]; then
  echo "demo-postgres: creating a PostgreSQL $version cluster in $data"
  server "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C --no-instructions >/dev/null
fi

if running; then
  echo "demo-postgres: already running (left over from an earlier demo); using it"
else
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo-postgres: 127.0.0.1:$port is taken by something else; set DEMO_PG_PORT to a free port" >&2
    exit 1
  fi
  pg_ctl -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c password_encryption=scram-sha-256" start >/dev/null \
    || { echo "demo-postgres: the server did not start; its log:" >&2; tail -n 20 "$dir/server.log" >&2; exit 1; }
  echo "demo-postgres: PostgreSQL $version on 127.0.0.1:$port"
fi

# The gateway's roles, with the passwords the gateway's config will send.
# Passwords go through stdin, never on a command line.
sql -d postgres <<SQL
SELECT 'CREATE ROLE gatehouse_orders LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gatehouse_orders') \gexec
SELECT 'CREATE ROLE gatehouse_staging LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gatehouse_staging') \gexec
ALTER ROLE gatehouse_orders PASSWORD $(quote "$ORDERS_DB_PASSWORD");
ALTER ROLE gatehouse_staging PASSWORD $(quote "$STAGING_DB_PASSWORD");
SELECT 'CREATE DATABASE orders' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'orders') \gexec
SELECT 'CREATE DATABASE orders_staging' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'orders_staging') \gexec
SQL

for db in orders orders_staging; do
  role=gatehouse_orders
  [ "$db" = orders_staging ] && role=gatehouse_staging
  if [ "$(sql -d "$db" -A -t -c "SELECT to_regclass('public.customers') IS NULL")" = t ]; then
    sql -d "$db" < scripts/demo-seed.sql
    echo "demo-postgres: loaded scripts/demo-seed.sql into $db"
  fi
  sql -d "$db" -c "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO $role"
done
