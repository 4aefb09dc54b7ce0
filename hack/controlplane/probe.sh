# shellcheck shell=bash
# version_probe BINARY EXPECTED_SUBSTRING VERSION_ARGS...
#
# True when BINARY exists and its version output mentions EXPECTED_SUBSTRING. Sourced by build.sh and
# exercised by tests/controlplane_probe.rs.
#
# The output is captured whole before it is matched. Piping it into `grep -q` under `set -o pipefail`
# races: grep exits at its first match, the binary is killed by SIGPIPE while it writes its next line
# (kubectl prints a Kustomize line after the client version), and the pipeline reports the binary's 141,
# so an up-to-date binary looked stale on some runs (issue 9).
#
# With VERSION_PROBE_VERBOSE=1 a failed probe says why on stderr: the command, its exit status and what
# it printed, so that a mismatch is never reported without its cause.
version_probe() {
	local bin="$1" want="$2"
	shift 2
	local out status
	if [ ! -x "$bin" ]; then
		[ "${VERSION_PROBE_VERBOSE:-0}" = 1 ] && echo "probe: $bin does not exist or is not executable" >&2
		return 1
	fi
	status=0
	out="$("$bin" "$@" 2>&1)" || status=$?
	if [ "$status" -eq 0 ] && [[ "$out" == *"$want"* ]]; then
		return 0
	fi
	if [ "${VERSION_PROBE_VERBOSE:-0}" = 1 ]; then
		{
			echo "probe: \`$bin${*:+ $*}\` exited with status $status; expected its output to contain '$want'; it printed (first 20 lines):"
			printf '%s\n' "$out" | sed -n '1,20s/^/  | /p'
		} >&2
	fi
	return 1
}
