# egress-webhook. `make test` runs every test; CI runs it through .ci/run.
CARGO ?= cargo
# The cluster name `make dev` runs the webhook with.
CLUSTER_NAME ?= cluster1
# Where `make dev`/`dev-up` keep the kubeconfig, pid and logs.
DEV_STATE ?= .dev
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
BIN := $(TARGET_DIR)/release/egress-webhook
# EGRESS_SKIP_CLUSTER_TESTS=1 skips the cluster tests, and with them the control-plane build.
CONTROLPLANE := $(if $(filter 1,$(EGRESS_SKIP_CLUSTER_TESTS)),,controlplane)

.PHONY: fuzz fuzz-nightly all build static static-path image test lint unit controlplane dev dev-up dev-down crds manifests bench bench-controller reliability golden clean

all: build

build:
	$(CARGO) build --locked --release

# The static binary: glibc's static libraries (crt-static), for the host's triple, so that it
# runs with nothing but itself (an empty root, distroless/static). STATIC_PROFILE=dev builds
# it quicker, unoptimized (the test of the recipe does that).
# getrandom_backend: getrandom 0.3/0.4 find glibc's getrandom() with dlsym, which a static
# binary cannot do, and then read /dev/urandom; this makes them call it directly, so that no
# /dev is needed either (0.2, under ring, already makes the system call).
STATIC_RUSTFLAGS := -C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"
STATIC_TARGET ?= $(shell rustc -vV | sed -n 's/^host: //p')
STATIC_PROFILE ?= release
STATIC_BIN = $(TARGET_DIR)/$(STATIC_TARGET)/$(if $(filter dev,$(STATIC_PROFILE)),debug,$(STATIC_PROFILE))/egress-webhook

## A statically linked binary; prints its path.
static:
	RUSTFLAGS='$(STATIC_RUSTFLAGS)' $(CARGO) build --locked --bin egress-webhook \
		--profile $(STATIC_PROFILE) --target $(STATIC_TARGET)
	@echo "static binary: $(STATIC_BIN)"

static-path:
	@echo $(STATIC_BIN)

# The image name the Deployment in manifests/ refers to.
IMAGE ?= egress-webhook:$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

## The container image (Dockerfile) with docker, podman or buildah, whichever can build here;
## fails, saying so, when none can.
image:
	IMAGE=$(IMAGE) hack/image/build.sh

## Every test: formatting, lints, unit, rule cases, golden expansion, Istio validity, CLI, and the
## tests on a real etcd + kube-apiserver + kube-controller-manager (built first; ~9 min cold, 0.4 s warm).
test: lint $(CONTROLPLANE) unit

## Build the pinned etcd, kube-apiserver, kube-controller-manager and kubectl from Go modules into
## ~/.cache/egress-webhook (skipped when the binaries already report the pinned versions).
controlplane:
	hack/controlplane/build.sh

## A local control plane with the webhook (cluster $(CLUSTER_NAME)) and the running example,
## in the foreground; Ctrl-C stops everything.
dev: controlplane build
	$(BIN) dev --cluster-name $(CLUSTER_NAME) --state-dir $(DEV_STATE) --apply manifests/examples

## The same in the background (kubeconfig at $(DEV_STATE)/kubeconfig); stop it with dev-down.
dev-up: controlplane build
	$(BIN) dev --detach --cluster-name $(CLUSTER_NAME) --state-dir $(DEV_STATE) --apply manifests/examples

dev-down:
	@if [ -x $(BIN) ]; then $(BIN) dev --down --state-dir $(DEV_STATE); \
	else echo "$(BIN) not built: nothing can be running"; fi

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

unit:
	$(CARGO) test --locked

## Regenerate manifests/crds from the Rust types (a test fails when they are stale).
crds:
	$(CARGO) run --quiet --locked -- crds > manifests/crds/gloo-egress-crds.yaml

## Regenerate manifests/base/webhook-configurations.yaml from the code (a test fails when it is
## stale). The rest of manifests/ (base, overlays, components) is written by hand.
manifests:
	$(CARGO) run --quiet --locked -- webhook-config > manifests/base/webhook-configurations.yaml

## The property tests at length: 4 properties × FUZZ_CASES cases (1,000,000 in all), optimized with
## overflow checks; prints each property's count and time and the total. `make test` runs them
## with proptest's default, 256 cases each.
FUZZ_CASES ?= 250000
fuzz:
	CASES=$(FUZZ_CASES) CARGO=$(CARGO) hack/fuzz/run.sh

# cargo-fuzz, pinned like oha, built from crates.io into the tool cache on first use.
CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ_ROOT := $(HOME)/.cache/egress-webhook/tools/cargo-fuzz-$(CARGO_FUZZ_VERSION)
$(CARGO_FUZZ_ROOT)/bin/cargo-fuzz:
	$(CARGO) install --locked cargo-fuzz --version $(CARGO_FUZZ_VERSION) --root $(CARGO_FUZZ_ROOT)

## The cargo-fuzz targets of fuzz/ with the nightly toolchain (`decode`: bytes through the review
## decoder and decision; `core`: files through loading, defaulting, validation and expansion),
## FUZZ_SECONDS each, seeded from hack/reviews, fuzz/seeds, manifests/examples and the golden
## inputs; prints each target's executions and rate. Nightly only, so not part of `make test`.
FUZZ_SECONDS ?= 60
fuzz-nightly: $(CARGO_FUZZ_ROOT)/bin/cargo-fuzz
	PATH=$(CARGO_FUZZ_ROOT)/bin:$$PATH FUZZ_SECONDS=$(FUZZ_SECONDS) hack/fuzz/nightly.sh

## Regenerate the golden files after a deliberate change to the expansion; review the diff.
golden:
	UPDATE_GOLDEN=1 $(CARGO) test --locked --test golden

# The load generator of `make bench`: oha, pinned, built from crates.io into the tool cache.
OHA_VERSION := 1.16.0
OHA := $(HOME)/.cache/egress-webhook/tools/oha-$(OHA_VERSION)/bin/oha
$(OHA):
	$(CARGO) install --locked oha --version $(OHA_VERSION) --root $(HOME)/.cache/egress-webhook/tools/oha-$(OHA_VERSION)

## Every benchmark, one run, into bench/RESULTS.md and bench/results.json (~31 min on 2 cores; the
## controller at scale adds ~50 min: BENCH_CONTROLLER=0 skips it and reports its last results):
## admission (serve vs a bare axum + rustls floor under oha, fixed rates and closed loop, HTTP/1.1
## and HTTP/2, client certificates), memory, cost growth, `check` at 1k/10k/100k objects, criterion
## micro-benchmarks, and `kubectl apply` on the real control plane with and without the webhook.
BENCH_CONTROLLER ?= 1
bench: $(OHA) $(CONTROLPLANE)
	@started=$$(date -u +%Y-%m-%dT%H:%M:%SZ) && set -e && \
	$(CARGO) build --locked --release --bin egress-webhook --example bench_floor && \
	OHA=$(OHA) python3 bench/admission.py && \
	python3 bench/check_line.py && \
	BENCH_CATALOG=bench/out/admission/catalog-41k.yaml $(CARGO) bench --locked --bench core && \
	python3 bench/cluster.py && \
	if [ "$(BENCH_CONTROLLER)" = 1 ]; then $(MAKE) bench-controller; fi && \
	OHA=$(OHA) python3 bench/report.py --started $$started

## Drain and certificate rotation at 1,500 reviews/s (oha), small reviews beside 3 MiB reviews,
## and the hostile-input, outage and concurrency tests with their figures recorded, into
## RELIABILITY.md (~12 min).
RELIABILITY_TESTS ?= --test admission_hostile_input --test admission_hostile_connections --test admission_rss \
	--test admission_no_blocking --test e2e_concurrency
reliability: $(OHA) $(CONTROLPLANE)
	@started=$$(date -u +%Y-%m-%dT%H:%M:%SZ) && set -e && rm -rf bench/out/reliability && \
	mkdir -p bench/out/reliability && \
	$(CARGO) build --locked --release --bin egress-webhook && \
	RELIABILITY_OUT=$(CURDIR)/bench/out/reliability/tests.jsonl $(CARGO) test --locked $(RELIABILITY_TESTS) && \
	OHA=$(OHA) python3 bench/reliability.py && \
	OHA=$(OHA) python3 bench/blocking.py --out bench/out/reliability/blocking && \
	python3 bench/reliability_report.py --started $$started

## The companion controller on local control planes: 20,000 ExternalServices + 10,000
## AccessPolicies + 100 VirtualGateways converged from zero vs kubectl's floor, idle writes and
## apiserver CPU, restart, and the admission path (~50 min on 2 cores, 20 of them two idle windows;
## a quick run: `make bench-controller N_ES=500 N_AP=250 N_VG=10 IDLE_SECONDS=30 SETTLE_SECONDS=5`).
bench-controller: $(CONTROLPLANE)
	bench/controller-scale.sh

clean:
	$(CARGO) clean
	rm -rf bench/out
