# Causeway's build. The README's two set-up commands are `make demo` and
# `make test`; .ci/run calls `make test` with CI=true.

GO            ?= go
BIN           := bin
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
KUBE_BUILD    := tools/kube/build.sh
# etcd 3.6, whose RequestWatchProgress the apiserver's streaming lists need.
ETCD_BUILD    := tools/etcd/build.sh
# istiod (pilot-discovery), the parity test's oracle (docs/parity.md).
ISTIO_BUILD   := tools/istio/build.sh
# Integration tests start several kube-apiservers; two packages at a time fit
# a 2-core machine. -count=1: the end-to-end test and the load harness build
# and run the causeway binary themselves, which Go's test cache cannot see,
# so a cached pass could be stale.
TEST_FLAGS    ?= -race -count=1 -p 2 -timeout 25m

.PHONY: all build test unit fuzz lint demo bench bench-go deps kube-binaries etcd-binaries istio-binaries clean

all: build

build:
	$(GO) build -o $(BIN)/causeway ./cmd/causeway

## deps: install what the tests need: openssl, iproute2 and haproxy (when
## root and missing), the pinned etcd, the pinned
## kube-apiserver/kube-controller-manager and the pinned istiod
## (pilot-discovery) with Istio's CRDs.
deps:
	@./hack/install-deps.sh

kube-binaries:
	@$(KUBE_BUILD) >/dev/null

etcd-binaries:
	@$(ETCD_BUILD) >/dev/null

istio-binaries:
	@$(ISTIO_BUILD) >/dev/null

## test: everything, integration tests included (they need `make deps`),
## then every fuzz target for a short fixed time (make fuzz).
test: deps
	CAUSEWAY_ETCD_BIN=$$($(ETCD_BUILD)) CAUSEWAY_KUBE_BIN=$$($(KUBE_BUILD)) CAUSEWAY_ISTIO_BIN=$$($(ISTIO_BUILD)) $(GO) test $(TEST_FLAGS) ./...
	$(MAKE) fuzz

## fuzz: each native Go fuzz target (discovered, see hack/fuzz.sh) for
## FUZZTIME (default 10s); FUZZTIME=10m make fuzz to search longer.
FUZZTIME ?= 10s
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./hack/fuzz.sh

## unit: only the tests that need nothing installed.
unit:
	$(GO) test -short -race ./...

$(GOLANGCI_LINT):
	@mkdir -p $(BIN)
	GOBIN=$(CURDIR)/$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/golangci-lint $(GOLANGCI_LINT)

# go mod tidy -diff changes nothing and fails when go.mod or go.sum is not
# tidy (a requirement missing, unused, or marked // indirect although the
# code imports it); run `go mod tidy` to fix.
lint: $(GOLANGCI_LINT)
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run 'go mod tidy' and commit the result"; exit 1; }
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...

demo: build
	./$(BIN)/causeway demo

## bench: the load harness at the target size (1,000 services x 10 endpoints
## in each of two clusters, 100 proxies per network, churn at 10/s and
## 100/s, the -rate default); results in bench/out/latest.json (untracked; copy a run worth keeping into bench/results/ under a dated name).
## BENCH_FLAGS adds flags, e.g. BENCH_FLAGS='-protocol delta' or '-sweep'.
BENCH_FLAGS ?=
BENCH_OUT   ?= bench/out/latest.json
bench: deps build
	$(GO) build -o $(BIN)/causeway-bench ./cmd/causeway-bench
	CAUSEWAY_ETCD_BIN=$$($(ETCD_BUILD)) CAUSEWAY_KUBE_BIN=$$($(KUBE_BUILD)) ./$(BIN)/causeway-bench -causeway $(BIN)/causeway \
		-services 1000 -endpoints 10 -proxies 100 -duration 30s \
		-out $(BENCH_OUT) $(BENCH_FLAGS)

## bench-go: the Go benchmarks of the model, xDS and Envoy translation.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/model/ ./internal/xds/ ./internal/envoy/

clean:
	rm -rf $(BIN)
