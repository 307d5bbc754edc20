#!/usr/bin/env bash
# `make demo`: starts a local PostgreSQL with sample data (PII included), a
# small CRM API with PII (examples/crm-api, 127.0.0.1:18080), and the gateway
# in front of both (API on 127.0.0.1:8181, Postgres proxy on 127.0.0.1:15432,
# ext_authz/ext_proc gRPC on 127.0.0.1:9191, and the Envoy stand-in on
# 127.0.0.1:10000), then prints what to try. Ctrl-C stops them all.
#
# The gateway runs on .demo/gatehouse.yaml: examples/gatehouse.yaml with the
# Postgres targets pointed at the demo's database (DEMO_PG_PORT, default
# 15433). The example file itself stays a template for your own setup.
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p .demo
# The example config names target credentials. The Postgres ones are real
# (the demo's database gets these passwords), and so is the CRM API's token
# (the demo's CRM API accepts it and nothing else); the SSH one is a
# placeholder until the SSH proxy exists, validated as a real config would be.
secret() { [ -s ".demo/$1" ] || (umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > ".demo/$1"); cat ".demo/$1"; }
[ -f .demo/web-prod.key ] || echo "demo placeholder, not a key" > .demo/web-prod.key
export ORDERS_DB_PASSWORD=${ORDERS_DB_PASSWORD:-$(secret orders-db.password)}
export STAGING_DB_PASSWORD=${STAGING_DB_PASSWORD:-$(secret staging-db.password)}
export CRM_API_TOKEN=${CRM_API_TOKEN:-$(secret crm-api.token)}
# The whole Authorization header the gateway sets for crm-api (examples/gatehouse.yaml).
export CRM_API_AUTHORIZATION="Bearer $CRM_API_TOKEN"
export DEMO_PG_PORT=${DEMO_PG_PORT:-15433}

gh=./bin/gatehouse
config=.demo/gatehouse.yaml
api=http://127.0.0.1:8181
proxy_port=15432
standin=http://127.0.0.1:10000
crm_port=18080
psql=psql
command -v psql >/dev/null || psql=$(dirname "$(compgen -G '/usr/lib/postgresql/*/bin/psql' | sort -V | tail -n 1)")/psql

# .demo/gatehouse.yaml: the example, with its Postgres targets on the demo
# database. Its relative paths (../.demo/…, ../build/…) mean the same from
# .demo/ as from examples/.
node --input-type=module - "$DEMO_PG_PORT" <<'JS'
import { readFileSync, writeFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
const port = process.argv[2];
const doc = parseDocument(readFileSync('examples/gatehouse.yaml', 'utf8'));
for (const target of doc.get('targets').items) {
  if (target.get('kind') === 'postgres') target.setIn(['upstream', 'address'], `127.0.0.1:${port}`);
}
doc.commentBefore = ` Written by scripts/demo.sh from examples/gatehouse.yaml on every run (edit that file instead):\n the Postgres targets point at the demo's database on 127.0.0.1:${port}.\n${doc.commentBefore ?? ''}`;
writeFileSync('.demo/gatehouse.yaml', String(doc));
JS
grep -q "address: 127.0.0.1:$proxy_port" "$config" || { echo "demo: $config has no Postgres listener on 127.0.0.1:$proxy_port (listeners.postgres in examples/gatehouse.yaml)" >&2; exit 1; }

# The audit checkpoint key and the approvals' seal key; the dev issuer's key is made on first use.
[ -f .demo/audit-checkpoint.pem ] || $gh audit keygen --out .demo/audit-checkpoint.pem >/dev/null
[ -f .demo/approval-seal.key ] || (umask 077 && node -e "process.stdout.write(require('node:crypto').randomBytes(32).toString('hex'))" > .demo/approval-seal.key)

serve_pid=
crm_pid=
cleanup() {
  trap - EXIT INT TERM HUP
  if [ -n "$serve_pid" ]; then
    kill -TERM "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
    echo "demo: gateway stopped"
  fi
  if [ -n "$crm_pid" ]; then
    kill -TERM "$crm_pid" 2>/dev/null || true
    wait "$crm_pid" 2>/dev/null || true
    echo "demo: CRM API stopped"
  fi
  scripts/demo-postgres.sh stop || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

scripts/demo-postgres.sh start

# The CRM API (the crm-api target's upstream). It keeps its data in memory,
# so every run starts from the same customers.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if port_open "$crm_port"; then
  echo "demo: 127.0.0.1:$crm_port is already in use (another demo still running?); stop it first" >&2
  exit 1
fi
: > .demo/crm-api.log
node --import tsx examples/crm-api/main.ts "$crm_port" >> .demo/crm-api.log 2>&1 &
crm_pid=$!
for _ in $(seq 100); do port_open "$crm_port" && break; sleep 0.1; done
port_open "$crm_port" || { echo "demo: the CRM API did not start; its log (.demo/crm-api.log):" >&2; tail -n 20 .demo/crm-api.log >&2; exit 1; }

: > .demo/gatehouse.log
$gh serve --config "$config" >> .demo/gatehouse.log 2>&1 &
serve_pid=$!
for _ in $(seq 300); do
  if ! kill -0 "$serve_pid" 2>/dev/null; then
    echo "demo: the gateway exited; its log (.demo/gatehouse.log):" >&2
    tail -n 30 .demo/gatehouse.log >&2
    exit 1
  fi
  port_open "$proxy_port" && port_open 10000 && grep -q '"gatehouse is serving"' .demo/gatehouse.log && break
  sleep 0.1
done
grep -q '"gatehouse is serving"' .demo/gatehouse.log || { echo "demo: the gateway did not come up in 30 s; see .demo/gatehouse.log" >&2; exit 1; }

pg="host=127.0.0.1 port=$proxy_port user=orders-db dbname=orders"
cat <<TRY

  Gatehouse is serving: API $api, Postgres proxy 127.0.0.1:$proxy_port
  in front of the demo PostgreSQL on 127.0.0.1:$DEMO_PG_PORT, and the Envoy
  stand-in $standin in front of the demo CRM API on 127.0.0.1:$crm_port
  (config: $config, log: .demo/gatehouse.log). Ctrl-C stops them all.

  ── PostgreSQL through the proxy ─────────────────────────────────────────
  # Paste this: psql as an analyst agent, with a fresh dev token as the
  # password. customers.email and .ssn come back masked, and so do the
  # emails, phone numbers and cards inside orders.notes; the DELETE is denied
  # (ERROR 42501) and never reaches the database:
  PGPASSWORD=\$($gh token -c $config --sub agent-analyst-1 --groups analysts) $psql "$pg" -c "SELECT id, name, email, ssn FROM customers ORDER BY id" -c "SELECT id, amount, notes FROM orders ORDER BY id" -c "DELETE FROM orders WHERE id = 12"

  # Tokens for the rest (valid 15 minutes; a session ends when its token
  # expires): an analyst agent, an SRE agent acting for alice, bob (a DBA).
  export ANALYST=\$($gh token -c $config --sub agent-analyst-1 --groups analysts)
  export SRE=\$($gh token -c $config --sub agent-sre-2 --groups sre-agents --act alice)
  export BOB=\$($gh token -c $config --sub bob --groups dba --human)

  # bob, a DBA, sees the emails (the ssn rule exempts no one):
  PGPASSWORD=\$BOB $psql "$pg" -c "SELECT id, name, email, ssn FROM customers ORDER BY id"
  # An interactive session (every statement is decided as you type it):
  PGPASSWORD=\$ANALYST $psql "$pg"

  # The SRE agent's UPDATE on prod waits for a DBA (hold mode): psql prints
  # "statement held for approval <id>" and waits (Ctrl-C withdraws it)...
  PGPASSWORD=\$SRE $psql "$pg" -c "UPDATE orders SET status = 'refunded' WHERE id = 13"
  # ...until bob approves it in another terminal (alice, the human the agent
  # acts for, could not). Then exactly that statement runs, once:
  $gh approvals list --token "\$BOB"
  $gh approvals approve <id> --token "\$BOB" --comment "refund ticket 1234"

  # The database itself, for comparison (only the gateway is meant to hold this password):
  PGPASSWORD=\$(cat .demo/orders-db.password) $psql "host=127.0.0.1 port=$DEMO_PG_PORT user=gatehouse_orders dbname=orders" -c "SELECT id, email, ssn FROM customers ORDER BY id"

  ── HTTP through the Envoy stand-in ──────────────────────────────────────
  # The stand-in calls Gatehouse's ext_authz (Check) and ext_proc (Process)
  # gRPC services exactly as Envoy would; production runs Envoy with
  # envoy/envoy.yaml instead. Agents send their token; the CRM API only ever
  # sees the gateway's own credential.
  export SUPPORT=\$($gh token -c $config --sub agent-support-1 --groups support-agents)
  export SRE_HTTP=\$($gh token -c $config --sub agent-sre-3 --groups sre-agents --act alice)
  export LEAD=\$($gh token -c $config --sub lena --groups sre-leads --human)

  # Allowed, masked: emails partial, phones hashed, the email and card number
  # in the notes redacted (content-length fixed to the masked body):
  curl -s $standin/customers -H "Authorization: Bearer \$SUPPORT"
  # Denied (403 with the policy's reasons): support agents may only read:
  curl -si $standin/customers -H "Authorization: Bearer \$SUPPORT" -H 'content-type: application/json' -d '{"name":"Eve","email":"eve@example.com"}'
  # Needs approval (ticket mode): 403 with the approval id (X-Gatehouse-Approval-Id),
  # its status URL (Link) and Retry-After; nothing reaches the API yet:
  curl -si $standin/customers -H "Authorization: Bearer \$SRE_HTTP" -H 'content-type: application/json' -d '{"name":"Katherine Johnson","email":"kj@example.com"}'
  # An SRE lead (a human, not alice: she is the one the agent acts for) approves it:
  $gh approvals list --token "\$LEAD"
  $gh approvals approve <id> --token "\$LEAD" --comment "onboarding ticket 42"
  # ...and the same request, retried, goes through exactly once (201):
  curl -si $standin/customers -H "Authorization: Bearer \$SRE_HTTP" -H 'content-type: application/json' -d '{"name":"Katherine Johnson","email":"kj@example.com"}'
  # The recorded exchanges, masked, as HAR:
  $gh sessions list -c $config --target crm-api
  $gh sessions replay <session-id> -c $config --har

  ── The same decisions through the API (custom integrations) ─────────────
  $gh authorize --token "\$ANALYST" --target orders-db --input examples/actions/orders-select.json
  $gh authorize --token "\$ANALYST" --target orders-db --input examples/actions/orders-delete.json   # exit status 3
  $gh authorize --token "\$SRE" --target orders-db --input examples/actions/orders-update.json      # held, as above

  ── Evidence ─────────────────────────────────────────────────────────────
  # Every decision and approval step is in a hash-chained, signed audit trail:
  $gh audit verify -c $config --anchor .demo/last-checkpoint.json
  $gh audit tail -c $config
  $gh audit export -c $config --format ocsf --since 1h

  # The live bundle revision, and the metrics:
  curl -s $api/health
  curl -s $api/metrics | grep ^gatehouse_

  # Hot reload: edit policies/data/access/data.yaml, then run
  make bundle
  # and within a second /health shows the new revision and decisions follow it.

TRY

# Until Ctrl-C (or the gateway stops); the EXIT trap stops both.
wait "$serve_pid"
