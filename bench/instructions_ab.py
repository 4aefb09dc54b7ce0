#!/usr/bin/env python3
"""Instructions per review of `serve` binaries and of the floor, counted by valgrind's callgrind:
for judging a change to the review path when the host is too busy for timings to mean anything.

Why instructions: on a shared 2-core host the closed-loop rate moves by tens of percent from one
minute to the next (bench/results/profile-closed-loop.md), and this machine has no hardware
counters (`perf stat -e instructions` says "not supported"). callgrind counts the instructions
the process executes, which do not depend on what else the host runs. It ignores cache misses
and the kernel's share (syscalls are the same per review for both: strace), so it is a measure of
our code's work, not a substitute for the closed-loop rate of `make bench`.

Method: each server (floor, then every binary) runs under callgrind twice, answering N1 and then
N2 reviews from oha (HTTP/1.1 over kept-alive connections, or with --http2 one connection of
multiplexed streams; client certificates; as bench/admission.py sends them); the instructions per review are (I(N2) - I(N1)) / (N2 - N1), so that start-up, the
catalog load and the TLS handshakes (the same number of connections both times) cancel out.
The catalog is the running example unless --objects says otherwise (under callgrind a large catalog
takes a minute or more to load).
With --annotate, the functions whose own count differs most between the floor and the
first binary are listed, per review.

usage: OHA=... instructions_ab.py [--n1 2000] [--n2 6000] [--annotate] [--http2] [--endpoint mutate]
       [--objects PATH]... [--no-floor] BINARY...
(bench/out/admission/ must exist: `make bench` writes its certificates and reviews there.)
"""
import argparse
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import admission as A  # noqa: E402

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(root)
out = "bench/out/instructions-ab"
os.makedirs(out, exist_ok=True)
CONNECTIONS = 4


def valgrind(tag, n):
    """The command prefix that runs a server under callgrind, its output file for (tag, n)."""
    path = f"{out}/callgrind.{tag}.{n}"
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={path}"], path


def total(path):
    """The instructions (Ir) a callgrind output file counts."""
    with open(path) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    raise SystemExit(f"no totals in {path}")


def load(server, n, review, http2, endpoint):
    cmd = A.oha_cmd(server, endpoint, review, None, None, http2, connections=CONNECTIONS, requests=n)
    r = subprocess.run(cmd, capture_output=True, text=True)
    figures = A.oha_figures(cmd, r.returncode, r.stdout, r.stderr)
    if figures["errors"] or figures["requests"] != n:
        raise SystemExit(f"{server.name}: {figures}")


def counted(tag, start, n, review, http2, endpoint):
    """Instructions of a server process that answered n reviews."""
    prefix, path = valgrind(tag, n)
    server = start(prefix)
    try:
        load(server, n, review, http2, endpoint)
    finally:
        server.stop()
    return total(path), path


def functions(path):
    """Instructions per function of a callgrind file, its own (exclusive) count: inclusive counts
    of async code are not usable, poll functions recurse through each other."""
    r = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", path],
                       capture_output=True, text=True, check=True)
    costs = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.+?)\s*(?:\[[^\]]*\])?$", line)
        if m and "PROGRAM TOTALS" not in line:
            # "file:function": the file tells the crate; keep both, shortened.
            name = re.sub(r"^.*/(?:registry/src/[^/]+|rustc/[0-9a-f]+)/", "", m.group(2))
            costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def webhook(binary, prefix, pki, objects):
    A.BIN = binary
    return A.webhook(pki, objects, out, os.path.basename(binary), prefix)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n1", type=int, default=2000)
    ap.add_argument("--n2", type=int, default=6000)
    ap.add_argument("--annotate", action="store_true")
    ap.add_argument("--review", default="bench/out/admission/reviews/es-create.json")
    # The catalog of the binaries (repeatable); the cost of a review against its size is one
    # binary run with --objects manifests/examples and again with a larger catalog added.
    ap.add_argument("--objects", action="append")
    ap.add_argument("--no-floor", action="store_true")
    ap.add_argument("--http2", action="store_true")
    # The floor answers any path alike; `serve` decides at /validate or /mutate.
    ap.add_argument("--endpoint", default="validate", choices=["validate", "mutate"])
    ap.add_argument("binaries", nargs="+")
    args = ap.parse_args()
    pki = A.pki("bench/out/admission/pki")
    objects = args.objects or ["manifests/examples"]
    # Under valgrind a server starts ~50 times slower: Server waits up to 300 s for /readyz.
    servers = [] if args.no_floor else [("floor", lambda prefix: A.floor(pki, out, prefix))]
    for i, b in enumerate(args.binaries):
        servers.append((f"bin{i}", lambda prefix, b=b: webhook(b, prefix, pki, objects)))
    files = {}
    per_review = {}
    for tag, start in servers:
        i1, f1 = counted(tag, start, args.n1, args.review, args.http2, args.endpoint)
        i2, f2 = counted(tag, start, args.n2, args.review, args.http2, args.endpoint)
        per_review[tag] = (i2 - i1) / (args.n2 - args.n1)
        files[tag] = (f1, f2)
        print(json.dumps({"server": tag, "instructions": [i1, i2], "reviews": [args.n1, args.n2],
                          "per_review": round(per_review[tag])}), flush=True)
    for tag in per_review:
        if tag != "floor" and "floor" in per_review:
            print(f"  {tag}: {per_review[tag]:,.0f} instructions per review, the floor {per_review['floor']:,.0f}: "
                  f"{per_review['floor'] / per_review[tag] * 100:.1f} %", flush=True)
    if args.annotate and "floor" in per_review:
        diffs = {}
        for tag in ("floor", "bin0"):
            f1, f2 = files[tag]
            a, b = functions(f1), functions(f2)
            diffs[tag] = {k: (b.get(k, 0) - a.get(k, 0)) / (args.n2 - args.n1) for k in set(a) | set(b)}
        names = set(diffs["floor"]) | set(diffs["bin0"])
        rows = sorted(names, key=lambda k: -abs(diffs["bin0"].get(k, 0) - diffs["floor"].get(k, 0)))
        print("own instructions per review (callgrind exclusive counts): bin0, floor, difference, function")
        for k in rows[:60]:
            b, f = diffs["bin0"].get(k, 0), diffs["floor"].get(k, 0)
            print(f"{b:>9,.0f} {f:>9,.0f} {b - f:>+9,.0f}  {k[:160]}")


if __name__ == "__main__":
    main()
