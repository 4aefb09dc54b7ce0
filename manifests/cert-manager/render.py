#!/usr/bin/env python3
"""Renders one cert-manager chart CRD template (stdin) the way the release's cert-manager.crds.yaml
does: `helm template cert-manager --set crds.enabled=true --set creator=static` (make/manifests.mk
of cert-manager), i.e. crds.keep=true (the chart's default) and the crd-labels helper with release
name cert-manager. Fails on any template syntax it does not know, rather than guessing.
Usage: render.py VERSION < crd-cert-manager.io_issuers.yaml"""
import sys

version = sys.argv[1]
lines = sys.stdin.read().split("\n")
while lines and lines[-1] == "":
    lines.pop()
assert lines[0] == "{{- if or .Values.crds.enabled .Values.installCRDs }}", lines[0]
assert lines[-1] == "{{- end }}", lines[-1]
body = "\n".join(lines[1:-1]) + "\n"
keep = "\n  {{- if .Values.crds.keep }}\n  annotations:\n    helm.sh/resource-policy: keep\n  {{- end }}"
assert body.count(keep) == 1, "crds.keep block changed"
body = body.replace(keep, "\n  annotations:\n    helm.sh/resource-policy: keep")
include = '\n    {{- include "cert-manager.crd-labels" . | nindent 4 }}'
assert body.count(include) == 1, "crd-labels include changed"
labels = [
    ("app", "cert-manager"),
    ("app.kubernetes.io/name", "cert-manager"),
    ("app.kubernetes.io/instance", "cert-manager"),
    ("app.kubernetes.io/component", "crds"),
    ("app.kubernetes.io/version", version),
]
body = body.replace(include, "".join(f'\n    {k}: "{v}"' for k, v in labels))
assert "{{" not in body, "template syntax left"
sys.stdout.write("---\n" + body)
