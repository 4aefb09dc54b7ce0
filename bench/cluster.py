#!/usr/bin/env python3
"""`kubectl apply` on the real control plane, with the webhook and without it (issue 12, item 8).

A fresh `egress-webhook dev` (etcd, kube-apiserver, kube-controller-manager, the webhook with its
controller in-process and client certificates, as `make dev` runs it), the running example applied.
Then, with the webhook and synchronous expansion (the companions are written before the apply
returns; checked once), and again after the webhook configurations are deleted (the floor: the
apiserver alone):
  - RUNS (20) `kubectl apply` of a copy of the running example's ExternalService and AccessPolicy
    under new names (new objects each time, so the apiserver calls the webhook: an apply that
    changes nothing sends no write), timed one by one: median, p90, min, max;
  - one `kubectl apply -f` of a 500-object file (250 ExternalServices + 250 AccessPolicies),
    into a namespace of its own each way.
The with/without runs alternate (with, without, with, ...) for the 20 small applies, so that drift of
the machine shows in both columns; the webhook configurations are restored in between.

usage: cluster.py [--out bench/out/cluster] [--runs 20] [--objects 500]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release", "egress-webhook")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Cluster:
    def __init__(self, state):
        self.state = state
        subprocess.run([BIN, "dev", "--down", "--state-dir", state], capture_output=True)
        r = subprocess.run([BIN, "dev", "--detach", "--cluster-name", "cluster1", "--state-dir", state,
                            "--apply", "manifests/examples"], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"dev did not start:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        with open(os.path.join(state, "ready")) as f:
            self.ready = json.load(f)
        self.env = dict(os.environ, KUBECONFIG=self.ready["kubeconfig"])

    def kc(self, *args, stdin=None, check=True):
        r = subprocess.run([self.ready["kubectl"], *args], input=stdin, capture_output=True,
                           text=True, env=self.env)
        if check and r.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)}: {r.stderr[-2000:]}")
        return r

    def timed_apply(self, text):
        t = time.monotonic()
        self.kc("apply", "-f", "-", stdin=text)
        return time.monotonic() - t

    def down(self):
        subprocess.run([BIN, "dev", "--down", "--state-dir", self.state], capture_output=True)


def example(i, ns="global", ap_ns="istio-egress"):
    """The running example's ExternalService and AccessPolicy under the names of copy `i`."""
    host = f"bench-{i}.example.com"
    return f"""apiVersion: networking.gloo.solo.io/v2
kind: ExternalService
metadata: {{name: {host}, namespace: {ns}}}
spec:
  hosts: [{host}]
  ports:
    - name: https
      number: 443
      protocol: HTTPS
      clientsideTls: {{}}
      egressGatewayRoutes:
        portMatch: 80
        virtualGatewayRefs: [{{cluster: cluster1, name: egress-vg, namespace: istio-egress}}]
---
apiVersion: security.policy.gloo.solo.io/v2
kind: AccessPolicy
metadata: {{name: bench-ap-{i}, namespace: {ap_ns}}}
spec:
  applyToDestinations:
    - kind: EXTERNAL_SERVICE
      port: {{number: 443}}
      selector: {{cluster: cluster1, name: {host}, namespace: {ns}}}
  config:
    authz:
      allowedClients:
        - serviceAccountSelector: {{cluster: cluster1, labels: {{account: productpage}}, namespace: bookinfo}}
"""


def webhook_configurations(c):
    r = c.kc("get", "mutatingwebhookconfigurations,validatingwebhookconfigurations", "-o", "json")
    items = json.loads(r.stdout)["items"]
    for it in items:
        for k in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
            it["metadata"].pop(k, None)
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def set_webhook(c, saved, on):
    if on:
        c.kc("apply", "-f", "-", stdin=saved)
    else:
        c.kc("delete", "mutatingwebhookconfigurations,validatingwebhookconfigurations", "--all")
    # The apiserver learns of the change through its watch of the configurations.
    time.sleep(3)


def stats(xs):
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
    return {"median_s": round(statistics.median(xs), 4), "p90_s": round(p90, 4),
            "min_s": round(xs[0], 4), "max_s": round(xs[-1], 4), "n": len(xs)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "cluster"))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--objects", type=int, default=500)
    args = ap.parse_args()
    os.chdir(ROOT)
    os.makedirs(args.out, exist_ok=True)
    rows = open(os.path.join(args.out, "cluster.jsonl"), "w")

    def add(**row):
        rows.write(json.dumps(row) + "\n")
        rows.flush()
        log(json.dumps(row))

    c = Cluster(os.path.join(args.out, "dev"))
    try:
        saved = webhook_configurations(c)
        if '"kind": "ValidatingWebhookConfiguration"' not in saved:
            raise SystemExit("the dev cluster has no ValidatingWebhookConfiguration")
        # Warm-up (first apply of a kind pays kubectl's discovery), then the check that expansion is
        # synchronous: the ServiceEntry is there when the apply returns.
        c.timed_apply(example("warm"))
        if c.kc("get", "serviceentries.networking.istio.io", "-A", "-o", "name").stdout.count("bench-warm") == 0:
            raise SystemExit("no ServiceEntry of bench-warm.example.com right after its apply")
        with_wh, without = [], []
        for i in range(args.runs):
            with_wh.append(c.timed_apply(example(f"w{i}")))
            set_webhook(c, saved, False)
            without.append(c.timed_apply(example(f"n{i}")))
            set_webhook(c, saved, True)
        add(part="apply", case="running example (ES + AP), with the webhook", **stats(with_wh))
        add(part="apply", case="running example (ES + AP), without the webhook", **stats(without))
        ratio = statistics.median(with_wh) / statistics.median(without)
        add(part="apply", case="ratio of medians", ratio=round(ratio, 2), target=1.5, met=ratio <= 1.5)

        half = args.objects // 2
        for tag, on in (("with", True), ("without", False)):
            ns = f"bench-{tag}"
            c.kc("create", "namespace", ns)
            text = "---\n".join(example(f"{tag}-{i}", ns=ns, ap_ns=ns) for i in range(half))
            set_webhook(c, saved, on)
            secs = c.timed_apply(text)
            add(part="apply-file", case=f"{args.objects} objects, {tag} the webhook", objects=args.objects,
                seconds=round(secs, 3))
            if tag == "with":
                file_with = secs
            else:
                file_ratio = file_with / secs
        add(part="apply-file", case="ratio", ratio=round(file_ratio, 2), target=2.0, met=file_ratio <= 2.0)
    finally:
        c.down()


if __name__ == "__main__":
    main()
