#!/usr/bin/env python3
"""Drain and certificate rotation under load (issue 13, item 5), with oha as the load, over HTTPS
with client certificates, `serve` with the 41,000-object catalog (bench/admission.py's inputs).

drain     oha sends the running example's review at 1,500/s over HTTP/1.1 for LOAD seconds; SIGTERM
          reaches `serve` after SIGTERM_AT seconds, with `--shutdown-delay` longer than the rest of
          the run, so every review oha sends is sent before "/readyz false + delay": none may fail,
          and `serve` must exit 0 once the load stops. Connections kept alive across the SIGTERM are
          told `Connection: close` and oha reconnects, as the apiserver does.
rotation  the same load for LOAD seconds, plus 100 new TLS connections per second (no keep-alive:
          each review is a full handshake), while the serving certificate is replaced 10 times (a
          new key signed by the same CA, swapped in by renaming a `..data`-style symlink, as a
          Kubernetes Secret volume does); `--cert-poll-interval 1s`. Zero handshake failures and
          zero failed reviews; afterwards a handshake shows the tenth certificate.

Rows go to OUT/reliability.jsonl; bench/reliability_report.py puts them into RELIABILITY.md.
usage: reliability.py [--out bench/out/reliability] [--parts drain,rotation]
"""
import argparse
import json
import os
import signal
import ssl
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import admission as A  # noqa: E402

RATE = 1500
LOAD = 30
SIGTERM_AT = 10


def oha_cmd(srv, review, seconds, rate, keepalive=True, conns=32):
    p = srv.pki
    cmd = ["taskset", "-c", A.LOAD_CPU, A.OHA, "--no-tui", "--output-format", "json",
           "-z", f"{seconds}s", "-m", "POST", "-D", review, "-T", "application/json",
           "--cacert", p["ca"], "--cert", p["client_cert"], "--key", p["client_key"], "-t", "10s", "-w",
           "-c", str(conns), "-q", str(rate), "--latency-correction"]
    if not keepalive:
        cmd.append("--disable-keepalive")
    return cmd + [f"{srv.url}/validate?timeout=10s"]


def summary(stdout):
    j = json.loads(stdout)
    codes = j.get("statusCodeDistribution", {})
    return {
        "sent": sum(codes.values()) + sum(j.get("errorDistribution", {}).values()),
        "ok": codes.get("200", 0),
        "failed": sum(n for c, n in codes.items() if c != "200") + sum(j.get("errorDistribution", {}).values()),
        "errors": j.get("errorDistribution", {}),
        "p99_ms": round((j["latencyPercentiles"].get("p99") or 0) * 1000, 3),
    }


def serve(p, out, tag, cert, key, extra):
    port, mport = A.free_port(), A.free_port()
    cmd = [A.BIN, "serve", "--tls-cert", cert, "--tls-key", key,
           "--listen", f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{mport}",
           "--client-ca", p["client_ca"], "--client-allowed-names", A.CLIENT_NAME,
           "--objects", "manifests/examples", "--objects", os.path.join(A.ROOT, "bench", "out", "admission",
                                                                          "catalog-41k.yaml")] + extra
    return A.Server(f"webhook ({tag})", cmd, port, p, f"{out}/serve-{tag}.log", ready_port=mport, ready_tls=False)


def drain(p, out, review, rows):
    srv = serve(p, out, "drain", p["cert"], p["key"], ["--shutdown-delay", f"{LOAD - SIGTERM_AT + 10}s",
                                                       "--shutdown-grace", "20s"])
    load = subprocess.Popen(oha_cmd(srv, review, LOAD, RATE), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(SIGTERM_AT)
    t = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    stdout, stderr = load.communicate()
    if load.returncode != 0:
        raise SystemExit(f"oha: {stderr[-1000:]}")
    try:
        code = srv.proc.wait(60)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        code = "did not exit within 60 s of the end of the load"
    s = summary(stdout)
    rows.add(scenario="drain", what=f"SIGTERM after {SIGTERM_AT} s of {RATE}/s over HTTP/1.1 (32 connections), "
             f"--shutdown-delay {LOAD - SIGTERM_AT + 10}s; load for {LOAD} s in all",
             exit_code=code, exited_after_sigterm_s=round(time.monotonic() - t, 1), **s)


def leaf(p, d, n):
    """A new serving pair signed by the CA of `p`, in d/gen-n; returns the directory."""
    g = os.path.join(d, f"gen-{n}")
    os.makedirs(g, exist_ok=True)
    A.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", f"{g}/tls.key", "-out", f"{g}/tls.csr", "-subj", f"/CN=rotation {n}",
           "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
    A.run(["openssl", "x509", "-req", "-in", f"{g}/tls.csr", "-CA", p["ca"], "-CAkey",
           p["ca"].replace("ca.crt", "ca.key"), "-CAcreateserial", "-days", "2", "-copy_extensions", "copy",
           "-out", f"{g}/tls.crt"])
    return g


def swap(d, target):
    """Point d/..data at target atomically (rename of a new symlink over the old one)."""
    tmp = os.path.join(d, "..data_tmp")
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(os.path.basename(target), tmp)
    os.replace(tmp, os.path.join(d, "..data"))


def served_subject(port, p):
    ctx = ssl.create_default_context(cafile=p["ca"])
    ctx.load_cert_chain(p["client_cert"], p["client_key"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            return dict(x[0] for x in t.getpeercert()["subject"])["commonName"]


def rotation(p, out, review, rows):
    d = os.path.join(out, "rotating")
    os.makedirs(d, exist_ok=True)
    gens = [leaf(p, d, n) for n in range(11)]
    swap(d, gens[0])
    for f in ("tls.crt", "tls.key"):
        link = os.path.join(d, f)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..data", f), link)
    srv = serve(p, out, "rotation", os.path.join(d, "tls.crt"), os.path.join(d, "tls.key"),
                ["--cert-poll-interval", "1s", "--shutdown-delay", "0s"])
    try:
        kept = subprocess.Popen(oha_cmd(srv, review, LOAD, RATE), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        fresh = subprocess.Popen(oha_cmd(srv, review, LOAD, 100, keepalive=False, conns=8),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen = []
        interval = (LOAD - 6) / 10
        time.sleep(3)
        for n in range(1, 11):
            swap(d, gens[n])
            time.sleep(interval)
            seen.append(served_subject(srv.port, p))
        outs = [(x, x.communicate()) for x in (kept, fresh)]
        for x, (so, se) in outs:
            if x.returncode != 0:
                raise SystemExit(f"oha: {se[-1000:]}")
        a, b = summary(outs[0][1][0]), summary(outs[1][1][0])
        rows.add(scenario="rotation", what=f"10 serving-certificate rotations during {RATE}/s kept-alive + 100/s "
                 f"new connections (one handshake each) for {LOAD} s", rotations=10,
                 certificates_seen=seen, last_is_tenth=seen[-1] == "rotation 10",
                 sent=a["sent"] + b["sent"], ok=a["ok"] + b["ok"], failed=a["failed"] + b["failed"],
                 handshake_reviews=b["sent"], handshake_failed=b["failed"], errors={**a["errors"], **b["errors"]},
                 p99_ms=a["p99_ms"])
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(A.ROOT, "bench", "out", "reliability"))
    ap.add_argument("--parts", default="drain,rotation")
    args = ap.parse_args()
    os.chdir(A.ROOT)
    os.makedirs(args.out, exist_ok=True)
    adm = os.path.join(A.ROOT, "bench", "out", "admission")
    catalog = os.path.join(adm, "catalog-41k.yaml")
    if not os.path.exists(catalog):
        A.run([sys.executable, "bench/gen_scale.py", catalog, "20000", "1000", "20000"])
    reviews = os.path.join(args.out, "reviews")
    A.run([sys.executable, "bench/reviews.py", reviews])
    p = A.pki(os.path.join(args.out, "pki"))
    rows = A.Rows(os.path.join(args.out, "reliability.jsonl"))
    review = os.path.join(reviews, "es-create.json")
    parts = args.parts.split(",")
    if "drain" in parts:
        drain(p, args.out, review, rows)
    if "rotation" in parts:
        rotation(p, args.out, review, rows)


if __name__ == "__main__":
    main()
