#!/usr/bin/env bash
# Refresh the generated blocks of README.md from the real commands (a test checks they match).
# The blocks status-get-output and status-describe-output need a cluster and are refreshed by
# their test: EGRESS_UPDATE_README=1 cargo test --test e2e_status readme
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
    "access-output": "```\n" + run(["access", "--host", "httpbin.org", ex]) + "```",
    "rules-table": run(["rules", "--markdown"]).rstrip("\n"),
}
# "Run the webhook locally": the real server with the running example, and the review of
# hack/reviews/es-create.json (tests/admission_reviews.rs checks the same blocks).
import json, base64, os, socket, tempfile, time
with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([bin, "certs", "--dir", tmp], check=True, capture_output=True)
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    srv = subprocess.Popen([bin, "serve", "--tls-cert", f"{tmp}/tls.crt", "--tls-key", f"{tmp}/tls.key",
                            "--listen", f"127.0.0.1:{port}", "--objects", ex, "--shutdown-delay", "0s"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def curl(path):
            return subprocess.run(["curl", "-sS", "--cacert", f"{tmp}/ca.crt", "-H", "Content-Type: application/json",
                                   "--data", "@hack/reviews/es-create.json", f"https://localhost:{port}{path}"],
                                  capture_output=True, text=True).stdout
        for _ in range(300):
            if curl("/validate?timeout=10s"):
                break
            time.sleep(0.1)
        mutate = curl("/mutate?timeout=10s")
        validate = curl("/validate?timeout=10s")
    finally:
        srv.terminate(); srv.wait()
patch = base64.b64decode(json.loads(mutate)["response"]["patch"]).decode()
blocks["serve-mutate-output"] = "```\n" + mutate + "\n```"
blocks["serve-patch"] = "```\n" + patch + "\n```"
blocks["serve-validate-output"] = "```\n" + validate + "\n```"
text = open("README.md").read()
for name, body in blocks.items():
    text = re.sub(rf"<!-- {name} -->\n.*?<!-- /{name} -->", lambda m: f"<!-- {name} -->\n{body}\n<!-- /{name} -->", text, flags=re.S)
open("README.md", "w").write(text)
PY
