#!/usr/bin/env bash
# `make demo`: runs the gateway on examples/gatehouse.yaml and prints what to try.
set -euo pipefail
cd "$(dirname "$0")/.."

# The example config names target credentials. No proxy uses them yet, but the
# config is validated as a real one would be, so the demo provides stand-ins.
mkdir -p .demo
[ -f .demo/web-prod.key ] || echo "demo placeholder, not a key" > .demo/web-prod.key
export ORDERS_DB_PASSWORD=${ORDERS_DB_PASSWORD:-demo-only}
export CRM_API_TOKEN=${CRM_API_TOKEN:-demo-only}
export STAGING_DB_PASSWORD=${STAGING_DB_PASSWORD:-demo-only}

gh=./bin/gatehouse
config=examples/gatehouse.yaml
api=http://127.0.0.1:8181
# The audit checkpoint key; the dev issuer's key is made on first use.
[ -f .demo/audit-checkpoint.pem ] || $gh audit keygen --out .demo/audit-checkpoint.pem >/dev/null

cat <<TRY

  Gatehouse is starting on $api with $config (Ctrl-C stops it).
  In another terminal, try:

  # Tokens from the local dev issuer: an analyst agent, an SRE agent acting
  # for alice, and bob, a human DBA.
  export ANALYST=\$($gh token -c $config --sub agent-analyst-1 --groups analysts)
  export SRE=\$($gh token -c $config --sub agent-sre-2 --groups sre-agents --act alice)
  export BOB=\$($gh token -c $config --sub bob --groups dba --human)

  # The analyst agent's SELECT is allowed, with customers.email and .ssn masked:
  $gh authorize --token "\$ANALYST" --target orders-db --input examples/actions/orders-select.json
  # Its DELETE is denied (exit status 3):
  $gh authorize --token "\$ANALYST" --target orders-db --input examples/actions/orders-delete.json

  # The SRE agent's UPDATE on prod is held until a DBA approves it:
  $gh authorize --token "\$SRE" --target orders-db --input examples/actions/orders-update.json
  # ...and in a third terminal (alice, the requester's human, could not):
  $gh approvals list --token "\$BOB"
  $gh approvals approve <id> --token "\$BOB" --comment "refund ticket 1234"

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
exec $gh serve --config $config
