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
api=http://127.0.0.1:8181
cat <<TRY

  Gatehouse is starting on $api with examples/gatehouse.yaml (Ctrl-C stops it).
  In another terminal, try:

  # An analyst agent's SELECT is allowed, with customers.email and .ssn masked:
  $gh policy eval --server $api -e gatehouse/postgres/decision -i examples/inputs/analyst-select.json

  # The same agent's DELETE is denied:
  $gh policy eval --server $api -e gatehouse/postgres/decision -i examples/inputs/analyst-delete.json

  # An SRE agent's UPDATE on prod is held for a DBA's approval:
  $gh policy eval --server $api -e gatehouse/postgres/decision -i examples/inputs/sre-update-prod.json

  # The live bundle revision, and the metrics:
  curl -s $api/health
  curl -s $api/metrics | grep ^gatehouse_

  # Hot reload: edit policies/data/access/data.yaml (say, add "delete" rights
  # by giving analysts a write grant), then run:
  make bundle
  # and within a second /health shows the new revision and decisions follow it.

TRY
exec $gh serve --config examples/gatehouse.yaml
