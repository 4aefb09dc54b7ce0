#!/usr/bin/env python3
"""Write the AdmissionReviews the admission benchmark sends (issue 12), as the apiserver sends them,
into DIR:

  es-create.json      the running example's ExternalService (hack/reviews/es-create.json), CREATE
  ap-create.json      the running example's AccessPolicy, CREATE
  es-invalid.json     an ExternalService the webhook denies (a port without a number, E-rules)
  es-large-update.json  the largest legal review: an UPDATE whose object and oldObject are each
                      an ExternalService of about 1.5 MiB (etcd's default request limit, so the
                      largest object a cluster stores), with legal content: about 6,300 long hosts
                      (within the 10,000 JSON values egress-webhook reviews). About 3 MiB.

usage: reviews.py DIR
"""
import copy
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
out = sys.argv[1]
os.makedirs(out, exist_ok=True)

with open(os.path.join(HERE, "..", "hack", "reviews", "es-create.json")) as f:
    es = json.load(f)


def write(name, review):
    path = os.path.join(out, name)
    with open(path, "w") as f:
        json.dump(review, f, separators=(",", ":"))
    return os.path.getsize(path)


def gvk(group, version, kind, resource):
    return {
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
    }


sizes = {"es-create.json": write("es-create.json", es)}

ap = copy.deepcopy(es)
ap["request"].update(gvk("security.policy.gloo.solo.io", "v2", "AccessPolicy", "accesspolicies"))
ap["request"]["uid"] = "0df28fbd-5f5f-4a6e-9c5a-8d7b3f9a6c02"
ap["request"]["name"] = "egress-access-policy"
ap["request"]["namespace"] = "istio-egress"
ap["request"]["object"] = {
    "apiVersion": "security.policy.gloo.solo.io/v2",
    "kind": "AccessPolicy",
    "metadata": {
        "name": "egress-access-policy",
        "namespace": "istio-egress",
        "uid": "5c1e9a3e-2d0b-4f7e-8a51-6f0c2b7d9e43",
        "generation": 1,
        "creationTimestamp": "2026-11-25T10:00:00Z",
    },
    "spec": {
        "applyToDestinations": [
            {
                "kind": "EXTERNAL_SERVICE",
                "port": {"number": 443},
                "selector": {"cluster": "cluster1", "name": "httpbin.org", "namespace": "global"},
            }
        ],
        "config": {
            "authz": {
                "allowedClients": [
                    {
                        "serviceAccountSelector": {
                            "cluster": "cluster1",
                            "labels": {"account": "productpage"},
                            "namespace": "bookinfo",
                        }
                    }
                ]
            }
        },
    },
}
sizes["ap-create.json"] = write("ap-create.json", ap)

bad = copy.deepcopy(es)
bad["request"]["uid"] = "0df28fbd-5f5f-4a6e-9c5a-8d7b3f9a6c03"
del bad["request"]["object"]["spec"]["ports"][0]["number"]
sizes["es-invalid.json"] = write("es-invalid.json", bad)

large = copy.deepcopy(es)
large["request"]["uid"] = "0df28fbd-5f5f-4a6e-9c5a-8d7b3f9a6c04"
large["request"]["operation"] = "UPDATE"
large["request"]["options"] = {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}
obj = large["request"]["object"]
# 1.5 MiB of hosts. egress-webhook reviews objects of up to 10,000 JSON values, so the hosts are
# long (249 characters, four labels of up to 63) rather than many: about 6,300 of them.
def long_host(i):
    return f"h{i:06d}{'x' * 56}.{'y' * 63}.{'z' * 63}.{'w' * 45}.example.org"


hosts = ["httpbin.org"] + [long_host(i) for i in range(((3 << 19) - 4096) // 252)]
obj["spec"]["hosts"] = hosts
large["request"]["oldObject"] = copy.deepcopy(obj)
sizes["es-large-update.json"] = write("es-large-update.json", large)

json.dump(sizes, sys.stdout)
print()
