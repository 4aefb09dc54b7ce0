#!/usr/bin/env bash
# Benchmark: resident memory of `egress-webhook serve` (release) with a static catalog (issue 12
# item 5; targets: <= 30 MB idle, <= 80 MB with 20,000 ExternalServices + 1,000 VirtualGateways +
# 20,000 AccessPolicies). For each case the server is started, and VmRSS (resident now) and VmHWM
# (the peak, loading included) are read from /proc/PID/status as soon as /readyz answers: the
# static catalog is loaded before the listener opens, so that is the state right after loading.
# Prints one JSON object per case, then a markdown table (also written to bench/results/memory.md).
#
# usage: bench/memory.sh            (N=20000 G=1000 A=20000 override the catalog's size)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
G=${G:-1000}
A=${A:-$N}
OUT=bench/out
RESULTS=bench/results/memory.md
BIN=${CARGO_TARGET_DIR:-target}/release/egress-webhook
mkdir -p "$OUT" "$(dirname "$RESULTS")"

cargo build --release --locked --quiet
SCALE="$OUT/memory-scale-$N-$G-$A.yaml"
[ -f "$SCALE" ] || python3 bench/gen_scale.py "$SCALE" "$N" "$G" "$A" >/dev/null
: >"$OUT/memory-empty.yaml"
"$BIN" certs --dir "$OUT/certs" >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# measure CASE FILE: start serve on FILE, wait for /readyz, print the JSON line.
measure() {
  local case=$1 file=$2 port pid objects rss hwm
  port=$(free_port)
  "$BIN" serve --tls-cert "$OUT/certs/tls.crt" --tls-key "$OUT/certs/tls.key" \
    --listen "127.0.0.1:$port" --objects "$file" --shutdown-delay 0s >"$OUT/memory-$case.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    curl -sf --cacert "$OUT/certs/ca.crt" "https://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { echo "serve exited; see $OUT/memory-$case.log" >&2; exit 1; }
    sleep 0.1
  done
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
  # What the catalog holds, as the server reports it (not what the generator meant to write).
  objects=$(curl -sf --cacert "$OUT/certs/ca.crt" "https://127.0.0.1:$port/metrics" |
    awk '/^egress_webhook_catalog_objects\{/ {n += $2} END {print n + 0}')
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  printf '{"bench":"memory","case":"%s","objects":%d,"rss_kb":%d,"hwm_kb":%d}\n' \
    "$case" "$objects" "$rss" "$hwm"
}

LINES=$(
  measure idle "$OUT/memory-empty.yaml"
  measure catalog "$SCALE"
)
echo "$LINES"
ROWS=$(echo "$LINES" | python3 <(cat <<'PY'
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    n, rss, hwm = r["objects"], r["rss_kb"], r["hwm_kb"]
    per = f"{rss * 1024 // n:,} B" if n else "-"
    print(f"| {r['case']} | {n:,} | {rss / 1024:.1f} MiB ({rss * 1024 / 1e6:.1f} MB) | {hwm / 1024:.1f} MiB | {per} |")
PY
))
cat >"$RESULTS" <<MD
# memory of serve

Measured $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown),
by \`bench/memory.sh\`: release \`serve --objects FILE\`, VmRSS and VmHWM from /proc/PID/status as soon as /readyz
answers. The catalog case is \`bench/gen_scale.py OUT $N $G $A\` ($N ExternalServices, $G VirtualGateways,
$A AccessPolicies, a gateway Service and 10 ServiceAccounts). Targets (issue 12): RSS <= 30 MB idle, <= 80 MB with the catalog.

| case | objects | RSS | peak (HWM) | RSS per object |
|---|---|---|---|---|
$ROWS
MD
cat "$RESULTS"
