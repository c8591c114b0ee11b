# Palisade: `make up` runs the sample mesh; `make ci` runs every check and
# test, installing what a fresh machine lacks.
GO      ?= go
BIN     := $(CURDIR)/bin
PEERS   := tools/opa/bin/opa-envoy-plugin tools/opa/bin/opa tools/dex/bin/dex tools/cfssl/bin/cfssl tools/kube/bin/kube-apiserver tools/kube/bin/kubectl
STATICCHECK := tools/staticcheck/bin/staticcheck
export PATH := $(BIN):$(PATH)

.PHONY: all build up deps peers check test e2e bench bench-quick ci clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/palisade ./cmd/palisade-proxy ./examples/workshop/cmd/workshop-app ./examples/authorizer

up: build
	$(BIN)/palisade up examples/workshop

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

$(STATICCHECK):
	tools/staticcheck/build.sh

check: $(STATICCHECK)
	@out=$$(gofmt -l cmd internal examples test bench 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./cmd/... ./internal/... ./examples/... ./test/...
	$(STATICCHECK) ./cmd/... ./internal/... ./examples/... ./test/...

test: build
	$(GO) test -race -count=1 ./...

e2e: build peers
	$(GO) test -race -count=1 -timeout 20m ./test/e2e/...

bench: build peers
	bench/run.sh

bench-quick: build peers
	bench/run.sh --quick

ci: deps peers check test bench-quick

clean:
	rm -rf $(BIN) tools/*/bin
