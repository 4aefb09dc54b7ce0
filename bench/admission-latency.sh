#!/usr/bin/env bash
# Benchmark: the admission hot path. A release `serve` whose catalog holds the running example plus
# 20,000 other objects (bench/gen_scale.py) answers ExternalService reviews on /validate and
# /mutate over 8 kept-alive HTTP/1.1 connections (as the apiserver calls webhooks), next to the
# baseline GET /healthz through the same TLS, HTTP and connection stack in the same run.
# Client-side latency (p50, p99, max) and throughput go to bench/results/admission-latency.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-5000}
C=${C:-8}
OUT=bench/out
RESULTS=bench/results/admission-latency.md
mkdir -p "$OUT" "$(dirname "$RESULTS")"

cargo build --release --locked --quiet
cargo build --release --locked --quiet --example review_load
BIN=target/release/egress-webhook
LOAD=target/release/examples/review_load
[ -f "$OUT/scale.yaml" ] || python3 bench/gen_scale.py "$OUT/scale.yaml" >/dev/null
"$BIN" certs --dir "$OUT/certs" >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

"$BIN" serve --tls-cert "$OUT/certs/tls.crt" --tls-key "$OUT/certs/tls.key" --listen "127.0.0.1:$PORT" \
  --objects manifests/examples --objects "$OUT/scale.yaml" --shutdown-delay 0s >"$OUT/serve.log" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true; wait $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  curl -sf --cacert "$OUT/certs/ca.crt" "https://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

ROWS=$("$LOAD" "https://127.0.0.1:$PORT" "$OUT/certs/ca.crt" hack/reviews/es-create.json "$N" "$C")
cat >"$RESULTS" <<MD
# admission latency

Measured $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)),
commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), by \`bench/admission-latency.sh\`: release \`serve\` with a
catalog of the running example + 20,111 objects, $C kept-alive HTTP/1.1 connections, client and server on the same
2 cores, reviews logged at info to a file. Latency is seen by the client, TLS and HTTP included.

| target | requests | errors | throughput | p50 | p99 | max |
|---|---|---|---|---|---|---|
$ROWS

The review is \`hack/reviews/es-create.json\` (the running example's ExternalService: /validate runs every
ExternalService rule against the catalog, /mutate computes and checks the defaults patch).
MD
cat "$RESULTS"
