#!/usr/bin/env python3
"""Small reviews beside 3 MiB reviews (issue 13, item 4): does a large review hold up the others?

For each build (this one, and with BLOCKING_BEFORE=PATH an earlier build's binary, side by side
in the same run), `serve` with the running example and the 41,000-object catalog, pinned to CPU 0
(so tokio has one async worker: the worst case), and oha pinned to CPU 1:
  alone   /validate of the running example's ExternalService at 1,000/s over HTTP/1.1, 20 s
  beside  the same, while a second oha sends the largest legal review (es-large-update.json,
          about 3 MiB: an UPDATE of two 1.5 MiB ExternalServices of 6,300 long hosts each) to
          /validate over 2 connections at 10/s
One JSON line per run (p50, p90, p99, p99.9, max of the small reviews; achieved rate and errors of
both streams) to OUT/blocking.jsonl. Each server's verdict on both reviews is checked first.

usage: blocking.py [--seconds 20] [--out bench/out/blocking]
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import admission as A  # noqa: E402

SMALL_RATE, LARGE_RATE, LARGE_CONNECTIONS = 1000, 10, 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(A.ROOT, "bench", "out", "blocking"))
    args = ap.parse_args()
    out, T = args.out, args.seconds
    os.makedirs(out, exist_ok=True)
    os.chdir(A.ROOT)
    reviews = os.path.join(out, "reviews")
    A.run([sys.executable, "bench/reviews.py", reviews])
    small, large = os.path.join(reviews, "es-create.json"), os.path.join(reviews, "es-large-update.json")
    catalog = os.path.join(out, "catalog-41k.yaml")
    if not os.path.exists(catalog):
        A.run([sys.executable, "bench/gen_scale.py", catalog, "20000", "1000", "20000"])
    p = A.pki(os.path.join(out, "pki"))
    rows = A.Rows(os.path.join(out, "blocking.jsonl"))
    builds = [("this build", A.BIN)]
    if os.environ.get("BLOCKING_BEFORE"):
        builds.insert(0, ("before", os.environ["BLOCKING_BEFORE"]))
    for build, binary in builds:
        A.BIN = binary
        srv = A.webhook(p, ["manifests/examples", catalog], out, build.replace(" ", "-"))
        try:
            for body in (small, large):
                allowed, _ = srv.verdict("validate", open(body, "rb").read())
                if not allowed:
                    raise SystemExit(f"{build}: {body} denied")
            for case in ("alone", "beside"):
                bg = None
                if case == "beside":
                    # Started first and stopped after: it covers the whole small run.
                    cmd = A.oha_cmd(srv, "validate", large, T + 4, LARGE_RATE, False, LARGE_CONNECTIONS)
                    bg = (cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
                    time.sleep(2)
                r = A.oha(srv, "validate", small, T, SMALL_RATE, False)
                row = dict(part="blocking", build=build, case=case, review="es-create.json",
                           rate=SMALL_RATE, seconds=T, **r, load_before=round(os.getloadavg()[0], 2))
                if bg:
                    stdout, stderr = bg[1].communicate()
                    lr = A.oha_figures(bg[0], bg[1].returncode, stdout, stderr)
                    row.update(large_review="es-large-update.json", large_rate=LARGE_RATE,
                               large_achieved_per_s=lr["achieved_per_s"], large_errors=lr["errors"],
                               large_p99_ms=lr["p99_ms"])
                rows.add(**row)
        finally:
            srv.stop()
    table(os.path.join(out, "blocking.jsonl"), os.path.join(out, "blocking.md"))


def table(jsonl, md):
    """The rows of this run as a markdown table (bench/results/blocking.md is one of them)."""
    import json
    import platform
    rows = [json.loads(line) for line in open(jsonl)]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=A.ROOT).stdout.strip()
    lines = ["# small reviews beside 3 MiB reviews\n",
             f"`bench/blocking.py`, {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}, commit {commit}, "
             f"{os.cpu_count()} cores, kernel {platform.release()}. `serve` with the running example and the "
             "41,000-object catalog on CPU 0 (one async worker), oha on CPU 1; small: /validate of the running "
             f"example's ExternalService at {SMALL_RATE:,}/s over HTTP/1.1; beside: while {LARGE_CONNECTIONS} "
             f"connections send the largest legal review (es-large-update.json, about 3 MiB) at {LARGE_RATE}/s.\n",
             "| build | case | small p50 | p90 | p99 | p99.9 | max | achieved/s | errors | large/s | large p99 | large errors | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join(str(x) for x in [
            r["build"], r["case"], f"{r['p50_ms']} ms", f"{r['p90_ms']} ms", f"{r['p99_ms']} ms",
            f"{r['p999_ms']} ms", f"{r['max_ms']} ms", r["achieved_per_s"], r["errors"],
            r.get("large_achieved_per_s", "–"), f"{r['large_p99_ms']} ms" if "large_p99_ms" in r else "–",
            r.get("large_errors", "–"), r["load_before"]]) + " |")
    with open(md, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
