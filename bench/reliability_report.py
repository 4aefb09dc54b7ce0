#!/usr/bin/env python3
"""Write RELIABILITY.md (issue 13, item 9) from the rows of one `make reliability` run:
bench/out/reliability/tests.jsonl (the hostile-input, outage and concurrency tests, written
through RELIABILITY_OUT by tests/support/reliability.rs) and bench/out/reliability/reliability.jsonl
(drain and rotation under load, bench/reliability.py). One table row per scenario: what was sent,
what failed, what was lost, memory, and the rest of its figures as they were recorded.

usage: reliability_report.py [--started ISO8601]
"""
import argparse
import json
import os
import platform
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "bench", "out", "reliability")

SENT = ("sent", "requests", "reviews", "applies", "connections", "cases")
FAILED = ("failed", "valid_reviews_failed", "errors_total", "handshake_failed", "denied_wrongly", "failures",
          "unescaped_in_answers_or_log")
LOST = ("lost", "missing", "extra", "companions_wrong")
MEMORY = ("vmhwm_bytes", "stated_bound_bytes", "rss_at_rest_bytes", "rss_with_bodies_bytes", "hwm_kb", "rss_kb")


def pick(row, keys):
    return {k: row[k] for k in keys if k in row}


def cell(d):
    def one(k, v):
        if k.endswith("_bytes") and isinstance(v, int):
            return f"{k[:-6]} {v / 1e6:,.1f} MB"
        return f"{k} {v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k} {v}"
    return ", ".join(one(k, v) for k, v in d.items()) or "–"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--started", default="")
    args = ap.parse_args()
    rows = []
    for name in ("tests.jsonl", "reliability.jsonl"):
        path = os.path.join(OUT, name)
        if os.path.exists(path):
            rows += [json.loads(line) for line in open(path) if line.strip()]
    # Small reviews alone and beside 3 MiB reviews (bench/blocking.py): item 4, no blocking.
    path = os.path.join(OUT, "blocking", "blocking.jsonl")
    if os.path.exists(path):
        for line in open(path):
            b = json.loads(line)
            what = f"/validate of the running example's ExternalService at {b['rate']:,}/s over HTTP/1.1, {b['seconds']} s"
            if b["case"] == "beside":
                what += (f", while 3 MiB reviews ({b['large_review']}) go to /validate at {b['large_rate']}/s "
                         f"(achieved {b['large_achieved_per_s']}/s, {b['large_errors']} errors, p99 {b['large_p99_ms']} ms)")
            build = "" if b["build"] == "this build" else f" ({b['build']}: {os.environ.get('BLOCKING_BEFORE', 'an earlier build')})"
            rows.append({"scenario": f"small reviews {b['case']}" + (" 3 MiB reviews" if b["case"] == "beside" else "") + build,
                         "what": what, "requests": b["requests"], "errors_total": b["errors"],
                         **{k: b[k] for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms", "achieved_per_s")}})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    md = ["# Reliability\n",
          f"`make reliability`, started {args.started or '?'}, commit {commit}, on {os.cpu_count()} cores, "
          f"kernel {platform.release()}. Each row is one scenario of that run, with the figures it recorded "
          "(raw: `bench/out/reliability/*.jsonl`, not committed). *Failed* counts answers that were wrong or "
          "missing among those that had to succeed; *lost* counts companions missing or wrong afterwards.\n",
          "| scenario | what | sent | failed | lost | memory | other figures |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        used = {"scenario", "test", "what"} | set(SENT) | set(FAILED) | set(LOST) | set(MEMORY)
        other = {k: v for k, v in r.items() if k not in used}
        other_text = "; ".join(f"{k}: {json.dumps(v) if not isinstance(v, str) else v}" for k, v in other.items())
        md.append("| " + " | ".join([
            r.get("scenario", "?") + (f" (`{r['test']}`)" if r.get("test") else ""),
            str(r.get("what", "")).replace("|", "\\|"),
            cell(pick(r, SENT)), cell(pick(r, FAILED)), cell(pick(r, LOST)), cell(pick(r, MEMORY)),
            other_text.replace("|", "\\|") or "–",
        ]) + " |")
    if not rows:
        md.append("| – | no rows: `make reliability` did not run | | | | | |")
    md.append("""
Worst-case memory of `serve` (README, "Bounded memory"; `src/admission/conn_buffers.rs`): the in-flight budget
(`--max-inflight-bytes`, 166 MB by default) + `--max-connections` (1,024) × 768 KiB per connection + the catalog +
the process at rest. The `worst-case memory` row drives the first two as far as one machine can and reads VmHWM.

Not in this table, because they record no figures into it (each is a test that fails when something is lost):
- apiserver and etcd outages of 30 s (`tests/e2e_outage.rs`, in `make test`): every companion of every parent
  admitted before the outage is present and equal to the expansion afterwards;
- the property tests (`make fuzz`: 4 properties × 250,000 cases).""")
    with open(os.path.join(ROOT, "RELIABILITY.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
