# egress-webhook. `make test` runs every test; CI runs it through .ci/run.
CARGO ?= cargo

.PHONY: all build test lint unit controlplane crds bench golden clean

all: build

build:
	$(CARGO) build --locked --release

## Every test: formatting, lints, unit, rule cases, golden expansion, Istio validity, CLI, and the
## tests on a real etcd + kube-apiserver + kube-controller-manager (built first; ~9 min cold, 0.4 s warm).
test: lint controlplane unit

## Build the pinned etcd, kube-apiserver, kube-controller-manager and kubectl from Go modules into
## ~/.cache/egress-webhook (skipped when the binaries already report the pinned versions).
controlplane:
	hack/controlplane/build.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

unit:
	$(CARGO) test --locked

## Regenerate manifests/crds from the Rust types (a test fails when they are stale).
crds:
	$(CARGO) run --quiet --locked -- crds > manifests/crds/gloo-egress-crds.yaml

## Regenerate the golden files after a deliberate change to the expansion; review the diff.
golden:
	UPDATE_GOLDEN=1 $(CARGO) test --locked --test golden

## check of 10,000 ExternalServices + 100 VirtualGateways + 10,000 AccessPolicies vs a baseline.
bench:
	bench/check-scale.sh

clean:
	$(CARGO) clean
	rm -rf bench/out
