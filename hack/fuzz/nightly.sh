#!/usr/bin/env bash
# `make fuzz-nightly`: the cargo-fuzz targets of fuzz/ (`decode`, `core`), FUZZ_SECONDS each,
# with the nightly toolchain and the pinned cargo-fuzz (the Makefile puts it first on PATH).
# Each target starts from its corpus of earlier runs (fuzz/corpus/TARGET, not committed) plus
# the repository's own inputs; prints libFuzzer's executions, rate and coverage per target.
# A crash stops that target, leaves the input in fuzz/artifacts/TARGET/ with the command that
# replays it, and fails the run after the other targets have run.
set -euo pipefail
cd "$(dirname "$0")/../.."
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
TARGETS="${FUZZ_TARGETS:-decode core}"

if ! cargo +nightly --version >/dev/null 2>&1; then
	echo "make fuzz-nightly needs the nightly toolchain: rustup toolchain install nightly" >&2
	exit 2
fi

# Seeds, copied so that libFuzzer writes what it finds into fuzz/corpus only.
seeds="$(mktemp -d)"
log="$(mktemp)"
trap 'rm -rf "$seeds" "$log"' EXIT
mkdir -p "$seeds/decode" "$seeds/core"
cp hack/reviews/*.json fuzz/seeds/decode/*.json "$seeds/decode/"
cp manifests/examples/*.yaml "$seeds/core/"
for input in tests/golden/*/input.yaml; do
	cp "$input" "$seeds/core/golden-$(basename "$(dirname "$input")").yaml"
done

# Built apart from the runs, so that FUZZ_SECONDS is fuzzing time.
for target in $TARGETS; do
	cargo +nightly fuzz build "$target"
done

failed=""
for target in $TARGETS; do
	mkdir -p "fuzz/corpus/$target"
	# -timeout: a review decided in more than 10 s is a hang, not a slow input.
	if ! cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "$seeds/$target" -- \
		-max_total_time="$FUZZ_SECONDS" -timeout=10 -dict=fuzz/admission.dict \
		-print_final_stats=1 2>&1 | tee "$log"; then
		failed="$failed $target"
	fi
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
	secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log")
	last=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' || true)
	echo "fuzz-nightly $target: ${runs:-?} executions in ${secs:-?} s (${rate:-?} exec/s), ${last:-no coverage line}, peak RSS ${rss:-?} MB"
done
if [ -n "$failed" ]; then
	echo "fuzz-nightly: crashed:$failed (inputs in fuzz/artifacts/)" >&2
	exit 1
fi
