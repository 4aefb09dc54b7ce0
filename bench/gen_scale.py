#!/usr/bin/env python3
"""Write the scale input of the `check` benchmark (issue 3): N ExternalServices, G VirtualGateways
and A AccessPolicies (default N; AccessPolicy i selects ExternalService i mod N), plus the gateway
Service and the ServiceAccounts they reference. Every object is valid, every reference resolves,
so `check` does all of its work.

usage: gen_scale.py OUT.yaml [N] [G] [A]
"""
import sys

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
g = int(sys.argv[3]) if len(sys.argv) > 3 else 100
a = int(sys.argv[4]) if len(sys.argv) > 4 else n

docs = []
docs.append("""apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-egress}
spec:
  selector: {app: istio-egressgateway, istio: egressgateway}
  ports:
    - {name: http2, port: 80, targetPort: 8080}
    - {name: https, port: 443, targetPort: 8443}""")
for i in range(10):
    docs.append(f"""apiVersion: v1
kind: ServiceAccount
metadata: {{name: sa-{i}, namespace: bookinfo, labels: {{account: a{i}}}}}""")
for v in range(g):
    docs.append(f"""apiVersion: networking.gloo.solo.io/v2
kind: VirtualGateway
metadata: {{name: vg-{v}, namespace: istio-egress}}
spec:
  listeners:
    - port: {{number: 443}}
      http: {{}}
      tls: {{mode: ISTIO_MUTUAL}}
  workloads:
    - selector: {{labels: {{app: istio-egressgateway, istio: egressgateway}}}}""")
for i in range(n):
    ns = f"team-{i % 50}"
    docs.append(f"""apiVersion: networking.gloo.solo.io/v2
kind: ExternalService
metadata: {{name: es-{i}, namespace: {ns}}}
spec:
  hosts: [svc-{i}.example.com]
  ports:
    - name: https
      number: 443
      protocol: HTTPS
      clientsideTls: {{caCertificates: /etc/ssl/certs/ca-certificates.crt}}
      egressGatewayRoutes:
        portMatch: 80
        virtualGatewayRefs: [{{name: vg-{i % g}, namespace: istio-egress, cluster: cluster1}}]""")
for j in range(a):
    i = j % n
    ns = f"team-{i % 50}"
    docs.append(f"""apiVersion: security.policy.gloo.solo.io/v2
kind: AccessPolicy
metadata: {{name: ap-{j}, namespace: istio-egress}}
spec:
  applyToDestinations:
    - kind: EXTERNAL_SERVICE
      selector: {{name: es-{i}, namespace: {ns}, cluster: cluster1}}
  config:
    authzList:
      - allowedClients:
          - serviceAccountSelector: {{namespace: bookinfo, labels: {{account: a{i % 10}}}}}
        allowedMethods: [GET]""")
with open(out, "w") as f:
    f.write("\n---\n".join(docs) + "\n")
print(f"{out}: {len(docs)} objects")
