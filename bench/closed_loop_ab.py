#!/usr/bin/env python3
"""Closed-loop /validate over HTTP/1.1 (or HTTP/2) of several `serve` binaries next to the floor, alternating, in
one run: for judging a change to the review path (build the binary before and after, pass both).

Each round runs the floor, then every binary, each on a fresh process with the running example and
the 41k catalog (`make bench` writes it to bench/out/admission/), with bench/admission.py's
pinning, certificates and oha command. Besides the rate it prints the server's CPU time per
review (utime + stime of the process over the run, from /proc): with the server pinned to one
CPU and saturated, rate ratio and CPU ratio agree, and the CPU figure says where a change went.
Timings on a shared host move with its load: read the ratios of one round, never figures from
different runs.

usage: OHA=... closed_loop_ab.py SECONDS ROUNDS BINARY...   (REVIEW=path to change the review; HTTP2=1)
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import admission as A  # noqa: E402

secs, rounds, binaries = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(root)
pki = A.pki("bench/out/admission/pki")
objects = ["manifests/examples", "bench/out/admission/catalog-41k.yaml"]
review = os.environ.get("REVIEW", "bench/out/admission/reviews/es-create.json")
# HTTP2=1: one HTTP/2 connection of multiplexed streams, as make bench's h2 rows.
HTTP2 = os.environ.get("HTTP2") == "1"
out = "bench/out/closed-loop-ab"
os.makedirs(out, exist_ok=True)
ticks = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks


def run(name, server):
    before = cpu_seconds(server.proc.pid)
    r = A.oha(server, "validate", review, secs, None, HTTP2)
    us = (cpu_seconds(server.proc.pid) - before) / max(r["requests"], 1) * 1e6
    print(json.dumps({"server": name, "per_s": r["achieved_per_s"], "cpu_us_per_review": round(us, 2),
                      "p99_ms": r["p99_ms"], "errors": r["errors"],
                      "load": round(os.getloadavg()[0], 2)}), flush=True)
    return r["achieved_per_s"], us


for _ in range(rounds):
    floor = A.floor(pki, out)
    f_rate, f_us = run("floor", floor)
    floor.stop()
    for b in binaries:
        A.BIN = b
        server = A.webhook(pki, objects, out, os.path.basename(b))
        rate, us = run(b, server)
        server.stop()
        print(f"  {b}: {rate / f_rate * 100:.1f} % of the floor's rate, "
              f"{f_us / us * 100:.1f} % by CPU per review", flush=True)
