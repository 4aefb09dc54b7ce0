#!/usr/bin/env bash
# `make fuzz`: the property tests (tests/fuzz_admission.rs, tests/fuzz_core.rs) at length, built
# with the `fuzz` profile (optimized, overflow checks on). CASES per property (PROPTEST_CASES);
# prints every property's count and time as the tests report them, then the total and wall time.
set -euo pipefail
cd "$(dirname "$0")/../.."
CASES="${CASES:-250000}"
CARGO="${CARGO:-cargo}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
"$CARGO" test --locked --profile fuzz --test fuzz_admission --test fuzz_core --no-run
start=$(date +%s)
PROPTEST_CASES="$CASES" "$CARGO" test --locked --profile fuzz \
	--test fuzz_admission --test fuzz_core -- --include-ignored --nocapture 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
end=$(date +%s)
# Lines "fuzz NAME: N cases run (M asked) in S s", one per property.
total=$(sed -n 's/^fuzz [a-z_]*: \([0-9]*\) cases run.*/\1/p' "$log" | awk '{ s += $1 } END { print s + 0 }')
properties=$(grep -c '^fuzz [a-z_]*: [0-9]* cases run' "$log" || true)
echo "make fuzz: ${total:-0} cases over ${properties} properties (PROPTEST_CASES=$CASES) in $((end - start)) s wall"
exit "$status"
