# Pinned versions of the local control plane, sourced by build.sh and regen-gomod.sh.
# Kubernetes 1.34 pins the etcd 3.6 client, so etcd stays on the 3.6 line (STACK.md 2.2).
K8S_VERSION=v1.34.4
ETCD_VERSION=v3.6.16
