#!/usr/bin/env python3
"""`egress-webhook check` wall time and peak RSS at 1,000, 10,000 and 100,000 objects (issue 12,
item 6: a line, not a point), next to the baseline `check manifests/examples` (process start-up
and the running example), interleaved run by run so that drift shows in both. Medians of RUNS.
Inputs from bench/gen_scale.py: half ExternalServices, half AccessPolicies, one VirtualGateway per
100 ExternalServices. Every input is valid: check must exit 0.

usage: check_line.py [--out bench/out/check] [--runs 3] [--sizes 1000,10000,100000]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release", "egress-webhook")


def measure(out, args):
    """(wall seconds, peak RSS KiB) of one run, from GNU time."""
    tf = os.path.join(out, "time")
    r = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", tf, BIN, "check", *args],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"check {' '.join(args)} exited {r.returncode}: {r.stderr[-1000:]}")
    wall, rss = open(tf).read().split()
    return float(wall), int(rss)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "check"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="1000,10000,100000")
    args = ap.parse_args()
    os.chdir(ROOT)
    os.makedirs(args.out, exist_ok=True)
    rows = open(os.path.join(args.out, "check.jsonl"), "w")
    for size in [int(s) for s in args.sizes.split(",")]:
        n = size // 2
        g = max(1, n // 100)
        a = size - n - g - 11  # gen_scale adds the gateway Service and 10 ServiceAccounts
        path = os.path.join(args.out, f"scale-{size}.yaml")
        if not os.path.exists(path):
            subprocess.run([sys.executable, "bench/gen_scale.py", path, str(n), str(g), str(a)],
                           check=True, stdout=subprocess.DEVNULL)
        objects = sum(1 for line in open(path) if line.startswith("kind:"))
        scale, base = [], []
        for _ in range(args.runs):
            scale.append(measure(args.out, [path]))
            base.append(measure(args.out, ["manifests/examples"]))
        row = {
            "part": "check", "objects": objects, "runs": args.runs,
            "wall_s": statistics.median(w for w, _ in scale),
            "wall_min_s": min(w for w, _ in scale), "wall_max_s": max(w for w, _ in scale),
            "peak_rss_kb": int(statistics.median(r for _, r in scale)),
            "baseline_wall_s": statistics.median(w for w, _ in base),
        }
        rows.write(json.dumps(row) + "\n")
        rows.flush()
        print(json.dumps(row), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
