#!/usr/bin/env bash
# Benchmark: `egress-webhook check` (release) of one file with 10,000 ExternalServices,
# 100 VirtualGateways and 10,000 AccessPolicies (issue 3: under 2 s on the 2-core CI machine).
# Baseline, interleaved in the same run: `check` of the running example (process start-up and a
# handful of objects), so that machine drift shows in both columns. Whole-process wall time and
# peak RSS from /usr/bin/time; medians of RUNS runs are written to bench/results/check-scale.md.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-7}
N=${N:-10000}
G=${G:-100}
BIN=target/release/egress-webhook
OUT=bench/out
RESULTS=bench/results/check-scale.md
mkdir -p "$OUT" "$(dirname "$RESULTS")"

cargo build --release --locked --quiet
python3 bench/gen_scale.py "$OUT/scale.yaml" "$N" "$G" >/dev/null

# One correctness check first: the scale input is valid, so check must exit 0.
"$BIN" check "$OUT/scale.yaml" >"$OUT/scale.findings" || { echo "check of the scale input failed"; exit 1; }

measure() { # prints "wall_seconds max_rss_kb"
  /usr/bin/time -f "%e %M" -o "$OUT/time" "$@" >/dev/null 2>&1
  cat "$OUT/time"
}
: >"$OUT/a"; : >"$OUT/b"
for _ in $(seq "$RUNS"); do
  measure "$BIN" check "$OUT/scale.yaml" >>"$OUT/a"
  measure "$BIN" check manifests/examples >>"$OUT/b"
done
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
a_wall=$(cut -d' ' -f1 "$OUT/a" | median); a_rss=$(cut -d' ' -f2 "$OUT/a" | median)
b_wall=$(cut -d' ' -f1 "$OUT/b" | median); b_rss=$(cut -d' ' -f2 "$OUT/b" | median)
a_min=$(cut -d' ' -f1 "$OUT/a" | sort -n | sed -n 1p); a_max=$(cut -d' ' -f1 "$OUT/a" | sort -n | sed -n '$p')
objects=$(grep -c '^kind:' "$OUT/scale.yaml")
warnings=$(grep -c '^warning:' "$OUT/scale.findings" || true)

cat >"$RESULTS" <<MD
# check at scale

Measured $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)),
commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $RUNS interleaved runs each, by \`bench/check-scale.sh\`.

| command | objects | wall median (min–max) | peak RSS median |
|---|---|---|---|
| \`check scale.yaml\` ($N ExternalServices, $G VirtualGateways, $N AccessPolicies) | $objects | ${a_wall} s (${a_min}–${a_max}) | $((a_rss / 1024)) MiB |
| baseline: \`check manifests/examples\` (the running example) | 9 | ${b_wall} s | $((b_rss / 1024)) MiB |

The scale input is valid (exit 0, $warnings warnings). Target: under 2 s.
MD
cat "$RESULTS"
