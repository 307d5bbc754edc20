#!/usr/bin/env bash
# Prints the revision stamped into a bundle: the git commit, plus a digest of
# the policy sources when they differ from it, so that every edit builds a
# bundle with a revision of its own (and /health shows which one is live).
set -euo pipefail
cd "$(dirname "$0")/.."
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo "nogit")
if [ -n "$(git status --porcelain -- policies 2>/dev/null)" ] || [ "$commit" = nogit ]; then
  digest=$(find policies -type f \( -name '*.rego' -o -name '*.yaml' -o -name '*.json' \) -not -path 'policies/testdata/*' -print0 \
    | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-8)
  echo "${commit}-dirty.${digest}"
else
  echo "$commit"
fi
