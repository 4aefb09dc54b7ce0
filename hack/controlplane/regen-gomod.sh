#!/usr/bin/env bash
# (Re)generates the two wrapper Go modules that build the local control plane from the Go
# module proxy: hack/controlplane/k8s (kube-apiserver, kube-controller-manager, kubectl) and
# hack/controlplane/etcd (etcd). Run it by hand after changing versions.sh, then commit the
# resulting go.mod and go.sum. CI and build.sh never run it: they build from the committed files.
#
# Why wrappers: `go install k8s.io/kubernetes/cmd/...@vX` and `go install go.etcd.io/etcd/server/v3@vX`
# both refuse, because the published go.mod files carry replace directives. Kubernetes also
# requires every staging module (k8s.io/api, ...) at v0.0.0 with a replace to ./staging, so the
# wrapper must map each one to its real tag v0.<minor>.<patch>. The list is read from the
# kubernetes go.mod itself, not hard-coded, because it changes between minors.
#
# Two modules, not one: a merged module would let minimal version selection lift Kubernetes'
# grpc/otel to etcd's newer versions.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.sh
. "$here/versions.sh"

k8s_minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
k8s_patch="$(echo "$K8S_VERSION" | cut -d. -f3)"
staging_version="v0.${k8s_minor}.${k8s_patch}"

step() { printf '==> %s\n' "$*"; }

# --- Module A: Kubernetes -----------------------------------------------------------------
k8s_dir="$here/k8s"
step "regenerating $k8s_dir/go.mod for k8s.io/kubernetes@$K8S_VERSION (staging modules at $staging_version)"
rm -f "$k8s_dir/go.mod" "$k8s_dir/go.sum"
mkdir -p "$k8s_dir"
cd "$k8s_dir"
go mod init example.invalid/egress-webhook/controlplane-k8s >/dev/null 2>&1

upstream_gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": *"\([^"]*\)".*/\1/p')"
[ -f "$upstream_gomod" ] || { echo "could not download the go.mod of k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }

# Keep Kubernetes' own go line and GODEBUG defaults: a newer go line would silently change
# TLS/x509 defaults compared with the released binaries.
go_line="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$upstream_gomod")"
go mod edit -go="$go_line"
godebug="$(sed -n 's/^godebug default=\(.*\)$/\1/p' "$upstream_gomod")"
[ -z "$godebug" ] || go mod edit -godebug=default="$godebug"

n=0
for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$upstream_gomod"); do
	go mod edit -replace="$m=$m@$staging_version"
	n=$((n + 1))
done
step "added $n staging replace lines"

go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION"
go get -tool "k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION"
go get -tool "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION"
go mod tidy
step "etcd client pinned by Kubernetes: $(grep 'go.etcd.io/etcd/client/v3 ' "$upstream_gomod" | xargs)"

# --- Module B: etcd -----------------------------------------------------------------------
etcd_dir="$here/etcd"
step "regenerating $etcd_dir/go.mod for go.etcd.io/etcd/server/v3@$ETCD_VERSION"
rm -f "$etcd_dir/go.mod" "$etcd_dir/go.sum"
mkdir -p "$etcd_dir"
cd "$etcd_dir"
go mod init example.invalid/egress-webhook/controlplane-etcd >/dev/null 2>&1
# Start from etcd's own go line (not the local toolchain's), so any Go that can build etcd
# can build the wrapper; tidy raises it only if a dependency needs more.
etcd_gomod="$(go mod download -json "go.etcd.io/etcd/server/v3@$ETCD_VERSION" | sed -n 's/.*"GoMod": *"\([^"]*\)".*/\1/p')"
[ -f "$etcd_gomod" ] || { echo "could not download the go.mod of go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2; exit 1; }
go mod edit -go="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$etcd_gomod")"
go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
go mod tidy

step "done; review and commit hack/controlplane/{k8s,etcd}/go.{mod,sum}"
