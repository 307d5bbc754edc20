# Gatehouse. `make demo` and `make test` are the two entry points; each
# installs what it needs (the PostgreSQL server and pgbouncer packages via
# apt-get when they are missing, pinned Go tools into .tools/bin, npm
# packages) and can be run again at any time.

include tools.mk

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

TOOLS    := $(CURDIR)/.tools/bin
OPA      := $(TOOLS)/opa
CONFTEST := $(TOOLS)/conftest
REGAL    := $(TOOLS)/regal
# A project-local Python with psycopg, the Python client the Postgres proxy is tested with.
PY       := $(CURDIR)/.tools/py
PSYCOPG  := $(PY)/.psycopg-$(PSYCOPG_VERSION)
GHZ      := $(TOOLS)/ghz
# The OPA Go peer of bench-ext-authz (bench/ext-authz/opa-peer), pinned by its go.mod and go.sum.
OPA_ENVOY_PEER := $(TOOLS)/opa-envoy-peer

# What goes into the bundle: the Rego packages and the data. Tests, conftest
# checks and golden cases stay out. POLICY_SRC can point at another copy.
POLICY_SRC   := policies
REGO_DIRS    := $(addprefix $(POLICY_SRC)/,lib http postgres ssh)
POLICY_DIRS  := $(REGO_DIRS) $(POLICY_SRC)/data
ENTRYPOINTS  := gatehouse/http/decision gatehouse/postgres/decision gatehouse/ssh/decision
CAPABILITIES := policies/capabilities.json
BUNDLE       := build/bundle.tar.gz
REVISION     ?= $(shell scripts/bundle-revision.sh)
COVERAGE_THRESHOLD := 90

# Optional signing: make bundle SIGNING_KEY=keys/private.pem [SIGNING_ALG=RS256]
SIGNING_KEY ?=
SIGNING_ALG ?= RS256
SIGNING_FLAGS = $(if $(SIGNING_KEY),--signing-key $(abspath $(SIGNING_KEY)) --signing-alg $(SIGNING_ALG),)

.PHONY: help
help: ## Show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

## ---- set-up -------------------------------------------------------------

.PHONY: tools
tools: $(OPA) $(CONFTEST) $(REGAL) ## Install the pinned opa, conftest and regal into .tools/bin

$(OPA): tools.mk
	scripts/install-go-tool.sh $(TOOLS) opa github.com/open-policy-agent/opa $(OPA_VERSION)
$(CONFTEST): tools.mk
	CGO_ENABLED=0 scripts/install-go-tool.sh $(TOOLS) conftest github.com/open-policy-agent/conftest $(CONFTEST_VERSION)
$(REGAL): tools.mk
	scripts/install-go-tool.sh $(TOOLS) regal github.com/open-policy-agent/regal $(REGAL_VERSION)
$(GHZ): tools.mk
	scripts/install-go-tool.sh $(TOOLS) ghz github.com/bojand/ghz $(GHZ_VERSION) github.com/bojand/ghz/cmd/ghz
$(OPA_ENVOY_PEER): $(addprefix bench/ext-authz/opa-peer/,go.mod go.sum main.go)
	@mkdir -p $(TOOLS)
	cd bench/ext-authz/opa-peer && go build -mod=readonly -trimpath -buildvcs=false -o $@ .

$(PSYCOPG):
	@rm -rf $(PY)
	python3 -m venv $(PY)
	$(PY)/bin/pip install --quiet --disable-pip-version-check "psycopg[binary]==$(PSYCOPG_VERSION)"
	@touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

.PHONY: deps
deps: tools node_modules/.package-lock.json $(PSYCOPG) ## Install everything the build needs

.PHONY: system-deps
system-deps: ## Install the PostgreSQL server, pgbouncer and curl with apt-get if missing (tests, demo and benches run real ones)
	@scripts/install-system-deps.sh

## ---- build --------------------------------------------------------------

.PHONY: build
build: node_modules/.package-lock.json ## Compile the TypeScript into dist/
	npx tsc -p tsconfig.build.json

.PHONY: bundle
bundle: $(OPA) ## Compile policies/ to WASM: build/bundle.tar.gz (SIGNING_KEY=… signs it)
	@# OPA signs only in bundle mode, where data paths follow the folders. The
	@# staged bundle root holds the packages, and policies/data's contents at
	@# its top, so policies/data/access/data.yaml is data.access either way.
	@rm -rf $(BUNDLE).src && mkdir -p $(BUNDLE).src
	@cp -r $(REGO_DIRS) $(BUNDLE).src/ && cp -r $(POLICY_SRC)/data/. $(BUNDLE).src/
	cd $(BUNDLE).src && $(OPA) build -b . -t wasm $(addprefix -e ,$(ENTRYPOINTS)) \
	  --capabilities $(abspath $(CAPABILITIES)) --ignore '*_test.rego' \
	  --revision "$(REVISION)" $(SIGNING_FLAGS) -o $(abspath $(BUNDLE)).tmp
	@rm -rf $(BUNDLE).src
	@# A rename is atomic: a running gateway never reads a half-written bundle.
	@mv $(BUNDLE).tmp $(BUNDLE)
	@echo "built $(BUNDLE) at revision $(REVISION)"

.PHONY: capabilities
capabilities: $(OPA) node_modules/.package-lock.json ## Regenerate policies/capabilities.json (builtins the WASM engine supports)
	node scripts/gen-capabilities.mjs --opa $(OPA) --out $(CAPABILITIES)

## ---- checks -------------------------------------------------------------

.PHONY: test
test: system-deps deps policy-test conftest-test typecheck lint bundle ## Every check: policy tests, lint, conftest, typecheck, vitest
	npx vitest run --reporter=default --reporter=json --outputFile.json=build/vitest-report.json

.PHONY: policy-test
policy-test: $(OPA) $(REGAL) ## opa test with coverage, opa fmt, opa check, regal lint
	$(OPA) test $(POLICY_DIRS)
	@mkdir -p build
	@$(OPA) test --coverage --threshold $(COVERAGE_THRESHOLD) $(POLICY_DIRS) > build/coverage.json \
	  || { echo "opa test: coverage is below $(COVERAGE_THRESHOLD)% (report: build/coverage.json)"; exit 1; }
	@echo "opa test: coverage $$(node -p 'JSON.parse(require("fs").readFileSync("build/coverage.json","utf8")).coverage.toFixed(1)')% (threshold $(COVERAGE_THRESHOLD)%)"
	@unformatted=$$($(OPA) fmt --list policies); if [ -n "$$unformatted" ]; then echo "not formatted (run: $(OPA) fmt -w policies):"; echo "$$unformatted"; exit 1; fi
	$(OPA) check --strict --capabilities $(CAPABILITIES) $(POLICY_DIRS)
	$(REGAL) lint policies

.PHONY: conftest-test
conftest-test: $(CONFTEST) ## conftest verify, then the checks on the example configs
	$(CONFTEST) verify --policy policies/conftest
	$(CONFTEST) test --policy policies/conftest --namespace gatehouse.conftest.config examples/gatehouse.yaml
	$(CONFTEST) test --policy policies/conftest --namespace gatehouse.conftest.envoy envoy/envoy.yaml
	@# The known-bad files must fail, with the failures they were written for.
	@out=$$($(CONFTEST) test --no-color --policy policies/conftest --namespace gatehouse.conftest.config policies/conftest/testdata/bad-gatehouse.yaml || true); \
	  for want in 'written in plain text' 'has no approval block' 'recording.enabled is false' 'is used by 2 targets'; do \
	    grep -q "$$want" <<<"$$out" || { echo "conftest did not flag bad-gatehouse.yaml for: $$want"; exit 1; }; done
	@out=$$($(CONFTEST) test --no-color --policy policies/conftest --namespace gatehouse.conftest.envoy policies/conftest/testdata/bad-envoy.yaml || true); \
	  for want in 'ext_authz comes after envoy.filters.http.router' 'does not set failure_mode_allow' 'has no timeout' 'has no envoy.filters.http.ext_authz' \
	    'has no with_request_body' 'ext_proc comes before envoy.filters.http.ext_authz' 'ext_proc comes after envoy.filters.http.router' \
	    'responses pass unmasked' 'response_body_mode is "STREAMED"' 'does not forward the envoy.filters.http.ext_authz metadata namespace' \
	    'neither masked nor recorded' 'has no access log' 'no access log prints'; do \
	    grep -q "$$want" <<<"$$out" || { echo "conftest did not flag bad-envoy.yaml for: $$want"; exit 1; }; done
	@echo "conftest: the known-bad configs are refused"

.PHONY: typecheck
typecheck: node_modules/.package-lock.json
	npx tsc -p tsconfig.json --noEmit

.PHONY: lint
lint: node_modules/.package-lock.json
	npx eslint .

## ---- running ------------------------------------------------------------

.PHONY: demo
demo: system-deps deps build bundle ## Start a sample PostgreSQL, a sample CRM API and the gateway (API, Postgres proxy, ext_authz/ext_proc, the Envoy stand-in) on examples/gatehouse.yaml; print what to try
	scripts/demo.sh

.PHONY: bench-engine
bench-engine: deps bundle ## p50/p99 µs and decisions/s per entrypoint
	npx tsx bench/engine.ts

.PHONY: bench-approvals
bench-approvals: system-deps deps ## Approve → held request resumes, per store backend, against the bare wake-up
	npx tsx bench/approvals.ts

.PHONY: bench-store
bench-store: system-deps deps ## Store appends/s by batch size, and reads/s, per backend
	npx tsx bench/store.ts

.PHONY: bench-audit
bench-audit: system-deps deps ## Durable audit events/s through AuditLog vs raw store writes, and audit verify events/s over 1M events
	npx tsx bench/audit.ts

.PHONY: bench-postgres
bench-postgres: system-deps deps build bundle ## pgbench -S TPS direct vs pgbouncer vs Gatehouse (ratios), and masked rows/s end to end
	npx tsx bench/postgres/run.ts

.PHONY: bench-pg-fuzz
bench-pg-fuzz: deps ## Frontend parser fuzz: 1M generated inputs (only messages or FrontendProtocolError), inputs/s and MB/s vs pg-protocol's backend Parser
	npx tsx bench/pg-frontend-fuzz.ts

.PHONY: bench-masking
bench-masking: deps ## DataRow masking rows/s, 2 of 6 columns masked vs the no-mask path, and all detectors over a notes column
	npx tsx bench/masking.ts

.PHONY: bench-ext-authz
bench-ext-authz: deps build $(GHZ) $(OPA_ENVOY_PEER) ## ghz on Check: Gatehouse vs an OPA Go peer (opa-envoy-plugin's mapping) vs no-op grpc-js, same policy and request (RPS ratios, p50/p99; PROFILE=cpu|alloc profiles Gatehouse)
	GHZ=$(GHZ) OPA=$(OPA) OPA_ENVOY_PEER=$(OPA_ENVOY_PEER) npx tsx bench/ext-authz/run.ts

.PHONY: clean
clean:
	rm -rf build dist .demo
