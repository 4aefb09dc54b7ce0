#!/usr/bin/env python3
"""Write bench/RESULTS.md and bench/results.json from the parts `make bench` ran (issue 12):
bench/out/admission/admission.jsonl, bench/out/check/check.jsonl, bench/out/cluster/cluster.jsonl,
criterion's estimates (target/criterion/**/new/estimates.json) and the controller benchmark's
bench/results/controller-scale.json. A part that did not run is said to be missing, not invented.

usage: report.py [--started ISO8601]
"""
import argparse
import glob
import json
import os
import platform
import statistics
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
OUT = os.path.join(ROOT, "bench", "out")


def jsonl(path):
    if not os.path.exists(path):
        return None
    return [json.loads(line) for line in open(path) if line.strip()]


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip()
    except OSError:
        return ""


def machine():
    mem_kb = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")))
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), "unknown")
    return {
        "nproc": os.cpu_count(), "cpu": model, "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(), "commit": sh("git", "rev-parse", "--short", "HEAD"),
        "dirty": bool(sh("git", "status", "--porcelain", "--untracked-files=no")),
        "oha": sh(os.environ.get("OHA", "oha"), "--version"),
        "load_average_at_report": open("/proc/loadavg").read().split()[:3],
    }


def criterion():
    out = {}
    base = os.path.join(TARGET, "criterion")
    for f in sorted(glob.glob(os.path.join(base, "**", "new", "estimates.json"), recursive=True)):
        name = os.path.relpath(os.path.dirname(os.path.dirname(f)), base)
        e = json.load(open(f))
        out[name] = {"median_us": round(e["median"]["point_estimate"] / 1000, 3),
                     "mean_us": round(e["mean"]["point_estimate"] / 1000, 3)}
    return out


def fmt(v, unit=""):
    if v is None:
        return "–"
    if isinstance(v, float):
        v = f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:,.0f}"
    return f"{v}{unit}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def steady_p99(r):
    """A fixed-rate row's p99 over the requests scheduled after its first second (the TLS
    handshakes of its connections; see WARM_S in bench/admission.py), or the whole run's where the
    row predates that figure."""
    return r.get("steady_p99_ms", r["p99_ms"])


def p99_target_rows(adm):
    """server -> its runs of the p99 target's load (es-create at /validate, 2,000/s over HTTP/1.1)
    against the full catalog: the ladder's row and the growth rounds at the largest size."""
    sizes = [r["objects"] for r in adm if r.get("part") == "growth"]
    out = {"webhook": [], "floor": []}
    for r in adm:
        ladder = (r.get("part") == "ladder" and r.get("protocol") == "http/1.1" and r.get("rate") == 2000)
        growth = r.get("part") == "growth" and sizes and r["objects"] == max(sizes)
        if (ladder or growth) and r.get("server") in out:
            out[r["server"]].append(r)
    return out


def growth_p99s(adm, server, key=steady_p99):
    """objects -> the p99s (ms) of `server`'s growth rows for that catalog size, one per round."""
    by = {}
    for r in adm:
        if r.get("part") == "growth" and r["server"] == server:
            by.setdefault(r["objects"], []).append(key(r))
    return by


def growth_medians(adm, server, key=steady_p99):
    """objects -> the median over the rounds of `server`'s p99 for that catalog size."""
    return {n: statistics.median(v) for n, v in growth_p99s(adm, server, key).items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--started", default="")
    args = ap.parse_args()
    m = machine()
    adm = jsonl(os.path.join(OUT, "admission", "admission.jsonl")) or []
    check = jsonl(os.path.join(OUT, "check", "check.jsonl")) or []
    cluster = jsonl(os.path.join(OUT, "cluster", "cluster.jsonl")) or []
    micro = criterion()
    ctrl_path = os.path.join(ROOT, "bench", "results", "controller-scale.json")
    ctrl = json.load(open(ctrl_path)) if os.path.exists(ctrl_path) else None
    results = {"machine": m, "started": args.started, "finished": sh("date", "-u", "+%Y-%m-%dT%H:%M:%SZ"),
               "admission": adm, "check": check, "cluster": cluster, "micro": micro}

    md = [f"# Benchmarks\n",
          f"`make bench`, started {args.started or '?'}, finished {results['finished']}, commit {m['commit']}"
          f"{' (with uncommitted changes)' if m['dirty'] else ''}, on {m['nproc']} cores ({m['cpu']}), "
          f"{m['memory_gib']} GiB, kernel {m['kernel']}; load generator {m['oha'] or 'oha'}; load average "
          f"{' '.join(m['load_average_at_report'])} when the report was written.\n",
          "Every figure below comes from this one run; each server row sits next to the floor "
          "measured in the same run under the same load. Raw rows: `bench/results.json`.\n"]

    # Targets first.
    def row(part, server, **kw):
        for r in adm:
            if r.get("part") == part and r.get("server") == server and all(r.get(k) == v for k, v in kw.items()):
                return r
        return None

    targets = []
    r = row("ladder", "webhook", protocol="http/1.1", rate=2000)
    if r:
        # The same load against the same catalog runs in the ladder and in each growth round at the
        # largest size: the target takes the median over those runs (one 20 s run at this rate
        # moved with the host: the floor's steady p99 was 0.46, 1.09 and 5.96 ms in three runs
        # back to back), judged on the steady state (the connections open, as the apiserver keeps
        # them), with the whole runs' median beside it.
        same = p99_target_rows(adm)
        web, flo = same["webhook"], same["floor"]
        med = lambda rs, key: statistics.median(key(x) for x in rs)  # noqa: E731
        whole = lambda x: x["p99_ms"]  # noqa: E731
        steady = med(web, steady_p99)
        runs = f"median of {len(web)} run{'s' * (len(web) > 1)}"
        text = (f"{steady:g} ms, {runs} (" + ", ".join(f"{steady_p99(x):g}" for x in web) + ")"
                + (f" from second {r['steady_from_s']:g} on" if "steady_p99_ms" in r else "")
                + f"; floor {med(flo, steady_p99):g} ms")
        if "steady_p99_ms" in r:
            text += f"; whole runs with the handshakes {med(web, whole):g} ms (floor {med(flo, whole):g} ms)"
        targets.append(("validate p99 at 2,000/s, HTTP/1.1, client certificates", "≤ 1 ms", text, steady <= 1.0))
    def closed(server, proto):
        return [r for r in adm if r.get("part") == "closed" and r["server"] == server and r["protocol"] == proto]

    for proto in ("http/1.1", "h2"):
        web, flo = closed("webhook", proto), closed("floor", proto)
        if web:
            # Each round is a floor run and a webhook run back to back: the median of the rounds'
            # ratios, with every round shown.
            ratio = statistics.median(r["rate_vs_floor"] for r in web)
            each = " / ".join(f"{r['rate_vs_floor'] * 100:.1f}" for r in web)
            bounded = {r.get("round"): r for r in closed("floor-bounded", proto)}
            beside = ""
            if bounded:
                # The same floor with serve's per-connection bounds (bench/admission.py): what the
                # review itself costs, apart from the bounds' cost. Shown, not judged.
                same = [w["achieved_per_s"] / bounded[w.get("round")]["achieved_per_s"]
                        for w in web if w.get("round") in bounded]
                beside = (f"; against the floor with serve's connection bounds {statistics.median(same) * 100:.1f} % "
                          f"(" + " / ".join(f"{x * 100:.1f}" for x in same) + " %)")
            targets.append((f"closed-loop throughput vs the floor, {proto}", "≥ 85 %",
                            f"{ratio * 100:.1f} % (median of {len(web)} round{'s' * (len(web) > 1)}: {each} %; webhook "
                            f"{statistics.median(r['achieved_per_s'] for r in web):,.0f}/s, floor "
                            f"{statistics.median(r['achieved_per_s'] for r in flo):,.0f}/s, medians){beside}",
                            ratio >= 0.85))
    mem = {r["case"]: r for r in adm if r.get("part") == "memory"}
    # /proc reports KiB. The targets say MB: judged in MB of 10^6 bytes, the stricter reading,
    # with MiB shown beside (the tables below are in MiB).
    def mb(kib):
        return kib * 1024 / 1e6
    if "idle, empty catalog" in mem:
        k = mem["idle, empty catalog"]["rss_kb"]
        targets.append(("RSS of `serve`, idle", "≤ 30 MB", f"{mb(k):.1f} MB ({k / 1024:.1f} MiB)", mb(k) <= 30))
    if "catalog loaded" in mem:
        k = mem["catalog loaded"]["rss_kb"]
        targets.append((f"RSS with the catalog ({mem['catalog loaded']['objects']:,} objects)", "≤ 80 MB",
                        f"{mb(k):.1f} MB ({k / 1024:.1f} MiB; peak while loading "
                        f"{mem['catalog loaded']['hwm_kb'] / 1024:.1f} MiB)", mb(k) <= 80))
    # Each size's median p99 over the rounds (bench/admission.py runs the sizes in turn).
    p99s = growth_p99s(adm, "webhook")
    growth = growth_medians(adm, "webhook")
    if growth:
        small, big = min(growth), [n for n in growth if n >= 20000]
        if big:
            b = min(big)
            ratio = growth[b] / growth[small]
            rounds = len(p99s[b])
            steady_note = (", from the first second on" if all("steady_p99_ms" in r for r in adm
                                                                if r.get("part") == "growth") else "")
            targets.append((f"p99 at 2,000/s with {b:,} objects vs {small}", "≤ 1.2 ×",
                            f"{ratio:.2f} × ({growth[b]} ms vs {growth[small]} ms, medians of {rounds} "
                            f"rounds{steady_note})", ratio <= 1.2))
    for r in cluster:
        if "ratio" in r:
            what = ("`kubectl apply` of the running example, with vs without the webhook"
                    if r["part"] == "apply" else "`kubectl apply -f` of a 500-object file, with vs without")
            targets.append((what, f"≤ {r['target']} ×", f"{r['ratio']} ×", r["met"]))
    md.append("## Targets\n")
    md.append(table(["target", "wanted", "measured", "met"],
                    [(a, b, c, "yes" if d else "**no**") for a, b, c, d in targets]))
    results["targets"] = [{"target": a, "wanted": b, "measured": c, "met": d} for a, b, c, d in targets]

    head = ["server", "review", "endpoint", "protocol", "rate/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms",
            "max ms", "p99 from 1 s", "p99.9 from 1 s", "achieved/s", "requests", "errors", "p99 / floor",
            "rate / floor"]

    def rows_of(part):
        return [(r["server"], r["review"], "/" + r["endpoint"], r["protocol"], r["rate"], r["p50_ms"], r["p90_ms"],
                 r["p99_ms"], r["p999_ms"], r["max_ms"], r.get("steady_p99_ms"), r.get("steady_p999_ms"),
                 r["achieved_per_s"], r["requests"], r["errors"], r.get("p99_vs_floor"), r.get("rate_vs_floor"))
                for r in adm if r.get("part") == part]

    closed_head = ["round", "server", "protocol", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "achieved/s",
                   "requests", "errors", "rate / floor"]

    sections = [
        ("ladder", "Fixed rates: the running example's ExternalService at /validate",
         "oha at a fixed rate for the stated seconds with `--latency-correction` (latency counted from the "
         "scheduled send), 32 kept-alive HTTP/1.1 connections, or one HTTP/2 connection with 8 streams (the most `serve` allows on one); "
         "client certificate `kube-apiserver-webhook-client`; server on CPU 0, oha on CPU 1. The p50 to max "
         "columns are oha's, over the whole run; \"from 1 s\" are the same percentiles over the requests "
         "scheduled after the first second, read from oha's per-request file (`--db-url`): the first second "
         "holds the TLS handshakes of the connections, which the apiserver makes once and keeps."),
        ("closed", "Closed loop: as fast as it goes", "Same connections, no rate limit, 10 s per run; rounds of "
         "a floor run then a webhook run, the target takes the median of the rounds' ratios. Over HTTP/2 each "
         "round ends with `floor-bounded`: the floor with `serve`'s per-connection bounds "
         "(`bench_floor --conn-buffers serve`: 64 KiB flow-control windows, 8 streams, 16 KiB send buffers, "
         "where hyper's windows are 1 MiB); its rate / floor column is the bounds' cost. A CPU profile of "
         "`serve` in this state is in `bench/results/profile-closed-loop.md`."),
        ("reviews", "Other reviews at 2,000/s over HTTP/1.1 (the 3 MiB review at 20/s)",
         "es-invalid is denied (its verdict is checked before the run); es-large-update is an UPDATE whose "
         "object and oldObject are each a 1.5 MiB ExternalService."),
        ("growth", "Cost growth: p99 at 2,000/s over HTTP/1.1 against the catalog's size", ""),
    ]
    for part, title, how in sections:
        rs = rows_of(part)
        if not rs:
            md.append(f"\n## {title}\n\nNot run.")
            continue
        md.append(f"\n## {title}\n\n{how}\n")
        if part == "growth":
            md.append(table(["round", "server", "objects", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "achieved/s",
                             "errors", "p99 / floor"],
                            [(r.get("round", 1), r["server"], r.get("objects"), r["p50_ms"], r["p99_ms"],
                              r["p999_ms"], r["max_ms"], r["achieved_per_s"], r["errors"], r.get("p99_vs_floor"))
                             for r in adm if r.get("part") == "growth"]))
            web, flo = growth_medians(adm, "webhook"), growth_medians(adm, "floor")
            wweb, wflo = (growth_medians(adm, srv, key=lambda r: r["p99_ms"]) for srv in ("webhook", "floor"))
            md.append("\nMedian p99 per size over the rounds (the floor ran next to each), from the first "
                      "second on (the target's figure) and over the whole run:\n")
            md.append(table(["objects", "webhook p99 ms from 1 s", "floor p99 ms from 1 s", "webhook p99 ms whole run",
                             "floor p99 ms whole run"],
                            [(n, web[n], flo.get(n), wweb[n], wflo.get(n)) for n in sorted(web)]))
        elif part == "closed":
            md.append(table(closed_head, [(r.get("round", 1), r["server"], r["protocol"], r["p50_ms"], r["p99_ms"],
                                           r["p999_ms"], r["max_ms"], r["achieved_per_s"], r["requests"],
                                           r["errors"], r.get("rate_vs_floor"))
                                          for r in adm if r.get("part") == "closed"]))
        else:
            md.append(table(head, rs))

    md.append("\n## Memory of `serve`\n\nVmRSS and VmHWM (peak) from /proc, release build, static catalog "
              "(`--objects`).\n")
    md.append(table(["when", "objects", "RSS MiB", "peak MiB"],
                    [(r["case"], r["objects"], r["rss_kb"] / 1024, r["hwm_kb"] / 1024)
                     for r in adm if r.get("part") == "memory"]) if mem else "Not run.")

    md.append("\n## `check` against input size\n\nMedian wall time of the runs, next to `check "
              "manifests/examples` (start-up, the running example) run in between.\n")
    md.append(table(["objects", "wall s (median)", "min–max s", "peak RSS MiB", "baseline s"],
                    [(r["objects"], r["wall_s"], f"{r['wall_min_s']}–{r['wall_max_s']}", r["peak_rss_kb"] / 1024,
                      r["baseline_wall_s"]) for r in check]) if check else "Not run.")

    md.append("\n## Micro-benchmarks (criterion, `benches/core.rs`)\n\nOne review of the running example's "
              "ExternalService; `example`: against the running example alone, `catalog`: against it plus "
              "the 41,000-object catalog.\n")
    md.append(table(["benchmark", "median µs", "mean µs"],
                    [(k, v["median_us"], v["mean_us"]) for k, v in micro.items()]) if micro else "Not run.")

    md.append("\n## `kubectl apply` on the real control plane (`egress-webhook dev`)\n")
    if cluster:
        md.append(table(["what", "median s", "p90 s", "min s", "max s", "runs / seconds"],
                        [(r["case"], r.get("median_s"), r.get("p90_s"), r.get("min_s"), r.get("max_s"),
                          r.get("n", r.get("seconds"))) for r in cluster if "ratio" not in r]))
    else:
        md.append("Not run.")

    md.append("\n## Companion controller at scale\n")
    if ctrl:
        md.append("From `bench/results/controller-scale.md` (`make bench-controller`, ~50 min), which records its own "
                  "commit and date; it is not re-run by every `make bench`. See that file for the figures: time "
                  "to converge 20,000 parents, creates/s next to kubectl's floor, idle writes (0) and idle "
                  "apiserver CPU with and without the webhook.")
        results["controller"] = {"file": "bench/results/controller-scale.json"}
    else:
        md.append("Not run.")

    with open(os.path.join(ROOT, "bench", "RESULTS.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(ROOT, "bench", "results.json"), "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
