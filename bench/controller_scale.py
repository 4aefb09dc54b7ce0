#!/usr/bin/env python3
"""Helpers of bench/controller-scale.sh (file work only; the script does everything that runs).

  split SRC DIR SIZE        multi-document YAML -> DIR/c-00000.yaml ... of SIZE documents each;
                            prints the number of documents
  namespaces SRC...         a v1 List of the Namespaces the documents name (YAML on stdout)
  count SRC                 "<kind> <count>" per kind of the documents
  field FILE.json KEY       one field of a JSON object
  metrics FILE              "queue creates updates deletes last_resync leader reads" of a
                            Prometheus text dump of the webhook
  compare RENDER JSON...    every companion in the cluster (kubectl get -o json lists) against
                            `egress-webhook render`: names, specs, labels and annotations of every
                            object; prints a JSON summary, exit 0 when equal
  apidiff A B               kube-apiserver /metrics dumps at the start and end of a window: the
                            requests served in between (by verb and resource) and Go GC cycles
  results OUT MD JSON       bench/results/controller-scale.{md,json} from OUT/values.tsv,
                            OUT/samples.tsv and the metrics dumps
"""
import json
import os
import re
import sys

import yaml

try:
    Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    Loader = yaml.SafeLoader


def docs_text(path):
    """The documents of a multi-document YAML file, as text (split on `---` lines)."""
    docs, cur = [], []
    with open(path) as f:
        for line in f:
            if line.rstrip("\n") == "---":
                if "".join(cur).strip():
                    docs.append("".join(cur))
                cur = []
            else:
                cur.append(line)
    if "".join(cur).strip():
        docs.append("".join(cur))
    return docs


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.load_all(f, Loader=Loader) if d]


def cmd_split(src, outdir, size):
    size = int(size)
    docs = docs_text(src)
    os.makedirs(outdir, exist_ok=True)
    for i in range(0, len(docs), size):
        with open(os.path.join(outdir, f"c-{i // size:05d}.yaml"), "w") as f:
            f.write("---\n" + "---\n".join(docs[i : i + size]))
    print(len(docs))


def cmd_namespaces(*srcs):
    names = set()
    for src in srcs:
        for d in load_all(src):
            ns = (d.get("metadata") or {}).get("namespace")
            if ns:
                names.add(ns)
    items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in sorted(names)]
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


def cmd_count(src):
    counts = {}
    for d in load_all(src):
        counts[d["kind"]] = counts.get(d["kind"], 0) + 1
    for k in sorted(counts):
        print(k, counts[k])


def cmd_field(path, key):
    with open(path) as f:
        print(json.load(f)[key])


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_metrics(path):
    """[(name, {label: value}, float)] of a Prometheus text dump."""
    out = []
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                continue
            m = SAMPLE.match(line)
            if not m:
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            try:
                out.append((m.group(1), labels, float(m.group(3))))
            except ValueError:
                pass
    return out


def cmd_metrics(path):
    q = c = u = d = r = lead = reads = 0.0
    for name, labels, v in parse_metrics(path):
        if name == "egress_webhook_controller_queue_depth":
            q = v
        elif name == "egress_webhook_companion_writes_total":
            op = labels.get("op")
            if op == "create":
                c += v
            elif op == "update":
                u += v
            elif op == "delete":
                d += v
        elif name == "egress_webhook_controller_last_complete_resync_timestamp_seconds":
            r = v
        elif name == "egress_webhook_controller_leader":
            lead = v
        elif name == "egress_webhook_controller_reads_total":
            reads += v
    print(f"{int(q)} {int(c)} {int(u)} {int(d)} {r:.3f} {int(lead)} {int(reads)}")


def cmd_apidiff(a, b):
    def read(path):
        reqs, gc = {}, 0.0
        for name, labels, v in parse_metrics(path):
            if name == "apiserver_request_total":
                res = labels.get("resource") or labels.get("subresource") or "(non-resource)"
                if labels.get("group"):
                    res = f"{res}.{labels['group']}"
                k = f"{labels.get('verb', '?')} {res}"
                reqs[k] = reqs.get(k, 0) + v
            elif name == "go_gc_duration_seconds_count":
                gc = v
        return reqs, gc

    (ra, ga), (rb, gb) = read(a), read(b)
    by = {k: int(rb[k] - ra.get(k, 0)) for k in rb if rb[k] - ra.get(k, 0) > 0}
    print(json.dumps({
        "requests": sum(by.values()),
        "by": dict(sorted(by.items(), key=lambda kv: -kv[1])),
        "gc_cycles": int(gb - ga),
        "note": "apiserver_request_total; includes the GET of /metrics that ends the window",
    }))


def key(o):
    m = o.get("metadata") or {}
    return (o.get("kind"), m.get("namespace", ""), m.get("name"))


def cmd_compare(render, *lists):
    want = {key(o): o for o in load_all(render)}
    have = {}
    for path in lists:
        with open(path) as f:
            for o in json.load(f).get("items", []):
                have[key(o)] = o
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    spec_diff, meta_diff = [], []
    for k in sorted(set(want) & set(have)):
        w, h = want[k], have[k]
        if w.get("spec") != h.get("spec"):
            spec_diff.append(k)
        wm, hm = w.get("metadata") or {}, h.get("metadata") or {}
        for field in ("labels", "annotations"):
            ws, hs = wm.get(field) or {}, hm.get(field) or {}
            if any(hs.get(a) != b for a, b in ws.items()):
                meta_diff.append(k)
                break
    per_kind = lambda keys: {
        kind: sum(1 for k in keys if k[0] == kind) for kind in sorted({k[0] for k in keys})
    }
    example = lambda keys: ["/".join(str(p) for p in k) for k in keys[:5]]
    summary = {
        "mode": "full: every companion's kind, namespace, name, spec, labels and annotations",
        "expected": len(want),
        "actual": len(have),
        "expected_per_kind": per_kind(list(want)),
        "actual_per_kind": per_kind(list(have)),
        "missing": len(missing),
        "extra": len(extra),
        "spec_differs": len(spec_diff),
        "metadata_differs": len(meta_diff),
        "examples": {
            "missing": example(missing),
            "extra": example(extra),
            "spec_differs": example(spec_diff),
            "metadata_differs": example(meta_diff),
        },
    }
    summary["equal"] = not (missing or extra or spec_diff or meta_diff)
    if spec_diff:
        k = spec_diff[0]
        summary["first_spec_difference"] = {"render": want[k].get("spec"), "cluster": have[k].get("spec")}
    print(json.dumps(summary))
    sys.exit(0 if summary["equal"] else 1)


def writes_by_kind(path):
    """{kind: {op: n}} of egress_webhook_companion_writes_total in a metrics dump."""
    out = {}
    if not os.path.exists(path):
        return out
    for name, labels, v in parse_metrics(path):
        if name == "egress_webhook_companion_writes_total" and v:
            out.setdefault(labels.get("kind", "?"), {})[labels.get("op", "?")] = int(v)
    return out


def counter_family(path, metric, label):
    out = {}
    if not os.path.exists(path):
        return out
    for name, labels, v in parse_metrics(path):
        if name == metric and v:
            out[labels.get(label, "?")] = out.get(labels.get(label, "?"), 0) + int(v)
    return out


def num(s):
    """A recorded value: integers and decimals as numbers, true/false as booleans, else text."""
    if re.fullmatch(r"-?[0-9]+", s):
        return int(s)
    if re.fullmatch(r"-?[0-9]+\.[0-9]+", s):
        return float(s)
    if s in ("true", "false"):
        return s == "true"
    return s


def cmd_results(out, md_path, json_path):
    vals = {}
    with open(os.path.join(out, "values.tsv")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            vals[k] = num(v)
    samples = {}
    cols = ["t", "epoch", "queue", "creates", "updates", "deletes", "last_resync", "leader", "reads"]
    sp = os.path.join(out, "samples.tsv")
    if os.path.exists(sp):
        with open(sp) as f:
            for line in f:
                parts = line.split()
                samples.setdefault(parts[0], []).append([num(p) for p in parts[1:]])
    cpu = {}
    cp = os.path.join(out, "cpu.tsv")
    if os.path.exists(cp):
        with open(cp) as f:
            for line in f:
                parts = line.split()
                cpu.setdefault(parts[0], []).append([num(p) for p in parts[1:]])
    dumps = {
        "converge": "metrics-converged.txt",
        "idle_end": "metrics-idle-end.txt",
        "restart_end": "metrics-restart-end.txt",
        "admission": "metrics-admission.txt",
        "store_serve": "metrics-store.txt",
    }
    metrics = {}
    for name, fn in dumps.items():
        p = os.path.join(out, fn)
        if os.path.exists(p):
            metrics[name] = {
                "companion_writes": writes_by_kind(p),
                "reconcile_events": counter_family(p, "egress_webhook_reconcile_events_total", "outcome"),
                "controller_reads": counter_family(p, "egress_webhook_controller_reads_total", "verb"),
                "admission_requests": counter_family(p, "egress_webhook_admission_requests_total", "verdict"),
            }
    compares = {}
    for name in ("floor", "converge", "restart", "admission"):
        p = os.path.join(out, f"compare-{name}.json")
        if os.path.exists(p) and os.path.getsize(p):
            with open(p) as f:
                compares[name] = json.load(f)
    apiserver = {}
    for name in ("idle", "idle_stopped"):
        p = os.path.join(out, f"apiserver-{name}.json")
        if os.path.exists(p) and os.path.getsize(p):
            with open(p) as f:
                apiserver[name] = json.load(f)
    doc = {
        "values": vals,
        "apiserver_requests_in_idle_windows": apiserver,
        "metrics": metrics,
        "compare": compares,
        "samples_columns": cols,
        "samples": samples,
        "cpu_columns": ["t", "kube_apiserver_ticks", "etcd_ticks"],
        "cpu_ticks_per_second": vals.get("machine.clk_tck"),
        "cpu": cpu,
    }
    with open(json_path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")

    v = lambda k, d="n/a": vals.get(k, d)

    def fmt(x, nd=1):
        if isinstance(x, float):
            return f"{x:,.{nd}f}"
        if isinstance(x, int) and not isinstance(x, bool):
            return f"{x:,}"
        return str(x)

    def ratio(a, b, nd=1):
        try:
            return f"{a / b:.{nd}f}"
        except (TypeError, ZeroDivisionError):
            return "n/a"

    conv = compares.get("converge", {})
    lines = []
    w = lines.append
    w("# companion controller at scale")
    w("")
    w(f"Measured {v('run.date')} by `bench/controller-scale.sh` ({v('run.seconds')} s in all), commit "
      f"{v('run.commit')}{' (working tree: ' + str(v('run.src_dirty')) + ')' if v('run.src_dirty') != 'clean' else ''}, "
      f"on {v('machine.nproc')} cores ({v('machine.cpu')}), {v('machine.mem_gib')} GiB memory, "
      f"kernel {v('machine.kernel')}. Load average {v('machine.load_start')} at the start and "
      f"{v('machine.load_end')} at the end (the machine is shared: other work ran at the same time).")
    w("")
    w(f"Scale: **{fmt(v('scale.n_es'))} ExternalServices, {fmt(v('scale.n_ap'))} AccessPolicies, "
      f"{fmt(v('scale.n_vg'))} VirtualGateways** (`bench/gen_scale.py OUT {v('scale.n_es')} {v('scale.n_vg')} "
      f"{v('scale.n_ap')}`, {fmt(v('scale.input_objects'))} objects with the gateway Service and "
      f"ServiceAccounts), whose expansion (`egress-webhook render`) is {fmt(v('scale.companions'))} companions "
      f"({v('scale.companions_per_kind')}). Idle windows {v('scale.idle_seconds')} s, each after "
      f"{v('scale.settle_seconds')} s of settling; kubectl "
      f"parallelism {v('scale.parallel')} processes of {v('scale.chunk')} objects (the controller's concurrency is 8).")
    w("")
    w("| step | measured | result |")
    w("|---|---|---|")
    w(f"| store the parents (admission: defaults + validation by `serve --objects`, no companions) | "
      f"{fmt(v('store.objects'))} objects, kubectl apply --server-side | {fmt(v('store.seconds'))} s "
      f"({ratio(v('store.objects'), v('store.seconds'), 0)}/s); reviews answered with a defaults patch: "
      f"{fmt(metrics.get('store_serve', {}).get('admission_requests', {}).get('patched', 0))}; companions afterwards: "
      f"{v('store.companions_after')} |")
    w(f"| floor: the same companions applied server-side by kubectl, fresh control plane | "
      f"{fmt(v('floor.objects'))} objects | {fmt(v('floor.seconds'))} s, **{fmt(v('floor.creates_per_s'))} creates/s** |")
    w(f"| controller from zero: start of `serve` until every companion equals `render` | "
      f"{fmt(v('converge.creates'))} creates, {v('converge.updates')} updates, {v('converge.deletes')} deletes; "
      f"{fmt(sum(metrics.get('converge', {}).get('controller_reads', {}).values()))} controller GETs |"
      " "
      f"**{fmt(v('converge.seconds'))} s** (target < 300 s; ready after {fmt(v('converge.ready_s'))} s, "
      f"first write {fmt(v('converge.first_write_s'))} s, last write {fmt(v('converge.last_write_s'))} s) |")
    w(f"| controller creates per second | over start→converged / first→last write | "
      f"**{fmt(v('converge.creates_per_s'))}** / {fmt(v('converge.write_phase_creates_per_s'))} creates/s "
      f"(floor {fmt(v('floor.creates_per_s'))}/s: {ratio(v('converge.creates_per_s'), v('floor.creates_per_s'), 2)}× / "
      f"{ratio(v('converge.write_phase_creates_per_s'), v('floor.creates_per_s'), 2)}×) |")
    w(f"| comparison with `render` | {conv.get('mode', 'n/a')} | "
      f"{'equal' if conv.get('equal') else 'NOT equal'}: {fmt(conv.get('actual', 'n/a'))} of "
      f"{fmt(conv.get('expected', 'n/a'))}, missing {conv.get('missing', 'n/a')}, extra {conv.get('extra', 'n/a')}, "
      f"spec differs {conv.get('spec_differs', 'n/a')}, metadata differs {conv.get('metadata_differs', 'n/a')} |")
    w(f"| idle, webhook running ({v('idle.seconds')} s) | companion writes (metric); controller reads | "
      f"**{v('idle.writes')}** writes; {v('idle.reads')} reads; full resyncs completed in the window: "
      f"{v('idle.resyncs_completed')} |")
    w(f"| idle, kube-apiserver CPU | webhook running / webhook stopped | "
      f"**{fmt(v('idle.apiserver_cpu_s'), 2)} s / {fmt(v('idle_stopped.apiserver_cpu_s'), 2)} s**, ratio "
      f"{ratio(v('idle.apiserver_cpu_s'), v('idle_stopped.apiserver_cpu_s'), 2)} (etcd {fmt(v('idle.etcd_cpu_s'), 2)} s / "
      f"{fmt(v('idle_stopped.etcd_cpu_s'), 2)} s; the webhook itself {fmt(v('idle.webhook_cpu_s'), 2)} s; requests "
      f"served {fmt(v('idle.apiserver_requests'))} / {fmt(v('idle_stopped.apiserver_requests'))}, apiserver Go GC cycles "
      f"{v('idle.apiserver_gc_cycles')} / {v('idle_stopped.apiserver_gc_cycles')}) |")
    w(f"| restart of the webhook | writes during the {v('restart.window_s')} s after /readyz | "
      f"**{v('restart.writes_window')}** (since process start: {v('restart.writes_since_start')}; ready after "
      f"{fmt(v('restart.ready_s'))} s; every parent compared (full resync done) after "
      f"{fmt(v('restart.resync_done_s'))} s) |")
    w(f"| admission path: `kubectl apply -f` of `gen_scale.py OUT {v('admission.n')} {v('admission.g')}` "
      f"with the webhook (fresh `dev`) | {v('admission.objects')} objects, {v('admission.companions')} companions expected | "
      f"**{fmt(v('admission.seconds'))} s**, **{fmt(v('admission.writes_at_return'))} writes** when apply returned "
      f"({fmt(v('admission.writes_settled'))} after settling); companions "
      f"{'equal to render' if compares.get('admission', {}).get('equal') else 'NOT equal to render'} |")
    w("")
    w("How: three control planes from `egress-webhook dev --detach`, one after the other. (1) floor: the "
      "webhook of `dev` frozen (SIGSTOP of the `dev` process, which runs the webhook in-process) and its "
      "webhook configurations deleted, then the `render` output applied server-side (the controller also "
      "writes with server-side apply). (2) main: `dev`'s webhook frozen the same way; the webhook "
      "configurations re-registered to a `serve --objects <input>` process (admission with the input as "
      "catalog and no controller), through which the parents are stored; then `serve --kubeconfig` (the "
      "webhook with its controller, as `dev`'s ServiceAccount egress-webhook, same address) starts, /metrics is read "
      "every second, and the cluster is compared with `render` once the creates reach the expected count "
      "and the queue is empty (the time reported is the sample before that comparison; writes did not "
      "change while it ran). CPU seconds are utime+stime of /proc/PID/stat, sampled every second too (JSON `cpu`). (3) admission: a fresh `dev` "
      "with its own (in-process) webhook and controller.")
    w("")
    w(f"Raw numbers and the per-second samples: `{os.path.basename(json_path)}` next to this file.")
    with open(md_path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {
        "split": cmd_split,
        "namespaces": cmd_namespaces,
        "count": cmd_count,
        "field": cmd_field,
        "metrics": cmd_metrics,
        "compare": cmd_compare,
        "apidiff": cmd_apidiff,
        "results": cmd_results,
    }[cmd](*args)


if __name__ == "__main__":
    main()
