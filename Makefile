# Palisade: `make up` runs the sample mesh; `make ci` runs every check and
# test, installing what a fresh machine lacks.
GO      ?= go
BIN     := $(CURDIR)/bin
PEERS   := tools/opa/bin/opa-envoy-plugin tools/opa/bin/opa tools/dex/bin/dex tools/cfssl/bin/cfssl tools/kube/bin/kube-apiserver tools/kube/bin/kubectl tools/helm/bin/helm tools/certmanager/bin/cert-manager-controllers
STATICCHECK := tools/staticcheck/bin/staticcheck
# Files tests keep for people to look at (the dashboard's screenshots).
ARTIFACTS ?= $(CURDIR)/test-artifacts
export PATH := $(BIN):$(PATH)

.PHONY: all build up deps peers check test e2e load soak bench bench-quick bench-race-codes fuzz fuzz-short ci clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/palisade ./cmd/palisade-proxy ./examples/workshop/cmd/workshop-app ./examples/authorizer

# As root (a CI machine, a container) the sample's proxies run as root too,
# which palisade-proxy refuses unless told so.
up: build
	$(BIN)/palisade up $(if $(filter 0,$(shell id -u)),--allow-root) examples/workshop

# System packages the tests drive as real peers (openssl, curl).
deps:
	scripts/deps.sh

# Real third-party servers, built from pinned modules.
peers: $(PEERS)
tools/opa/bin/opa-envoy-plugin tools/opa/bin/opa:
	tools/opa/build.sh
tools/dex/bin/dex:
	tools/dex/build.sh
tools/cfssl/bin/cfssl:
	tools/cfssl/build.sh
tools/kube/bin/kube-apiserver tools/kube/bin/kubectl:
	tools/kube/build.sh
tools/helm/bin/helm:
	tools/helm/build.sh
tools/certmanager/bin/cert-manager-controllers:
	tools/certmanager/build.sh

$(STATICCHECK):
	tools/staticcheck/build.sh

check: $(STATICCHECK)
	@out=$$(gofmt -l cmd internal examples test bench 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./cmd/... ./internal/... ./examples/... ./test/...
	$(STATICCHECK) ./cmd/... ./internal/... ./examples/... ./test/...

test: build
	mkdir -p $(ARTIFACTS)
	$(GO) test -race -count=1 -artifacts -outputdir $(ARTIFACTS) ./...

e2e: build peers
	mkdir -p $(ARTIFACTS)
	$(GO) test -race -count=1 -timeout 20m -artifacts -outputdir $(ARTIFACTS) ./test/e2e/...

# The load tests, which -race cannot run: 10,000 connections held
# through one sidecar, a burst of 5,000 mTLS connections (about 40s).
load:
	$(GO) test -count=1 -v -run 'TestTenThousandConnections|TestMTLSConnectionBurst' ./internal/proxy/

# 30 minutes of the workshop mesh at 1,000 rps with one-minute
# certificates and a root rotation half-way; writes docs/soak.md. Not in
# ci, which runs the same test for two minutes at 100 rps.
soak: build
	PALISADE_SOAK=30m PALISADE_SOAK_RPS=1000 PALISADE_SOAK_REPORT=$(CURDIR)/docs/soak.md \
		$(GO) test -count=1 -timeout 45m -v -run '^TestSoak$$' ./test/e2e/identity/

# Every fuzz target for FUZZTIME each (default 5m); fuzz-short is CI's
# few seconds each.
fuzz:
	scripts/fuzz.sh

fuzz-short:
	scripts/fuzz.sh -short

bench: build peers
	bench/run.sh

bench-quick: build peers
	bench/run.sh --quick

# The sidecars built with -race answer every benchmark path as the
# normal build does.
bench-race-codes: build
	bench/race-codes.sh

ci: deps peers check test load fuzz-short bench-quick

clean:
	rm -rf $(BIN) tools/*/bin
