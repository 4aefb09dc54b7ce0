#!/usr/bin/env bash
# Refresh the generated blocks of README.md from the real commands (a test checks they match).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/debug/egress-webhook}
cargo build --quiet --locked
python3 - "$BIN" <<'PY'
import re, subprocess, sys
bin = sys.argv[1]
def run(args):
    p = subprocess.run([bin] + args, capture_output=True, text=True)
    return p.stdout
ex = "manifests/examples"
blocks = {
    "check-output": "```\n" + run(["check", ex]) + "```",
    "check-missing-vg-output": "```\n" + run(["check", f"{ex}/10-egress-gateway-service.yaml", f"{ex}/20-service-accounts.yaml", f"{ex}/40-externalservice.yaml", f"{ex}/50-accesspolicy.yaml"]) + "```",
    "render-output": "```yaml\n" + run(["render", ex]) + "```",
    "rules-table": run(["rules", "--markdown"]).rstrip("\n"),
}
text = open("README.md").read()
for name, body in blocks.items():
    text = re.sub(rf"<!-- {name} -->\n.*?<!-- /{name} -->", lambda m: f"<!-- {name} -->\n{body}\n<!-- /{name} -->", text, flags=re.S)
open("README.md", "w").write(text)
PY
