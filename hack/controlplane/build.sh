#!/usr/bin/env bash
# Builds the local Kubernetes control plane used by tests and `make dev`:
#   kube-apiserver, kube-controller-manager, kubectl  (Kubernetes $K8S_VERSION)
#   etcd                                              (etcd $ETCD_VERSION)
# from the Go module proxy, through the committed wrapper modules in hack/controlplane/{k8s,etcd}.
# It never edits go.mod/go.sum (that is regen-gomod.sh's job) and never downloads release binaries.
#
# Binaries go outside the work tree, so that clean clones and `cargo clean` keep them:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/egress-webhook/k8s-$K8S_VERSION/bin/
#   ${XDG_CACHE_HOME:-$HOME/.cache}/egress-webhook/etcd-$ETCD_VERSION/bin/
# A binary whose --version already reports the pinned version is not rebuilt, so a second run is
# a no-op. Go's module and build caches stay at Go's defaults (GOMODCACHE, GOCACHE).
#
# Cost on 2 cores: cold about 6 min on an idle machine, 9-11 min next to other builds (kube-apiserver
# dominates; README.md has the measurements), peak about 2 GB RAM while linking.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.sh
. "$here/versions.sh"

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/egress-webhook"
k8s_bin="$cache_root/k8s-$K8S_VERSION/bin"
etcd_bin="$cache_root/etcd-$ETCD_VERSION/bin"
k8s_minor="$(echo "$K8S_VERSION" | cut -d. -f2)"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
step() { printf '==> %s\n' "$*"; }

# shellcheck source=probe.sh
. "$here/probe.sh"
# up_to_date BINARY EXPECTED_SUBSTRING VERSION_ARGS...: true when the binary exists and its version
# output mentions the pinned version (a binary from another pin or an unstamped build is rebuilt).
up_to_date() { version_probe "$@"; }

for d in "$here/k8s" "$here/etcd"; do
	if [ ! -f "$d/go.mod" ] || [ ! -f "$d/go.sum" ]; then
		echo "missing $d/go.mod or go.sum; run hack/controlplane/regen-gomod.sh and commit the result" >&2
		exit 1
	fi
done
command -v go >/dev/null || { echo "go is not on PATH (Go >= 1.26 is needed to build etcd $ETCD_VERSION)" >&2; exit 1; }

total_start="$(now)"
step "go: $(go version)"
step "Kubernetes $K8S_VERSION -> $k8s_bin"
step "etcd $ETCD_VERSION -> $etcd_bin"
mkdir -p "$k8s_bin" "$etcd_bin"

# --- Kubernetes ---------------------------------------------------------------------------
# Stamp the version: an unstamped build reports v0.0.0-master+$Format:%H$, which kubectl's
# version skew check cannot parse (STACK.md part 3, trap 6).
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags="$ldflags -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$k8s_minor"
	ldflags="$ldflags -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done

pkgs=()
for b in kube-apiserver kube-controller-manager; do
	if up_to_date "$k8s_bin/$b" "Kubernetes $K8S_VERSION" --version; then
		step "$b: already $K8S_VERSION, skipped"
	else
		pkgs+=("k8s.io/kubernetes/cmd/$b")
	fi
done
if up_to_date "$k8s_bin/kubectl" "Client Version: $K8S_VERSION" version --client; then
	step "kubectl: already $K8S_VERSION, skipped"
else
	pkgs+=("k8s.io/kubernetes/cmd/kubectl")
fi

if [ "${#pkgs[@]}" -gt 0 ]; then
	cd "$here/k8s"
	t="$(now)"
	step "go mod download (Kubernetes module graph)"
	go mod download
	step "downloaded in $(elapsed "$t")"
	t="$(now)"
	step "go build ${pkgs[*]##*/} (a cold build takes several minutes)"
	# One go build for all binaries, so shared packages are compiled once.
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$k8s_bin/" "${pkgs[@]}"
	step "built in $(elapsed "$t")"
fi

# --- etcd ---------------------------------------------------------------------------------
# etcd's version number is a source constant; only the git SHA needs stamping.
etcd_ver="${ETCD_VERSION#v}"
if up_to_date "$etcd_bin/etcd" "etcd Version: $etcd_ver" --version; then
	step "etcd: already $ETCD_VERSION, skipped"
else
	cd "$here/etcd"
	t="$(now)"
	step "go mod download (etcd module graph)"
	go mod download
	step "downloaded in $(elapsed "$t")"
	t="$(now)"
	step "go build etcd"
	# -o names the file: with a directory, Go would call it "server" (the element before /v3).
	CGO_ENABLED=0 go build -trimpath \
		-ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" \
		-o "$etcd_bin/etcd" go.etcd.io/etcd/server/v3
	step "built in $(elapsed "$t")"
fi

# --- Check --------------------------------------------------------------------------------
fail=0
check() {
	local bin="$1" want="$2"
	shift 2
	if VERSION_PROBE_VERBOSE=1 version_probe "$bin" "$want" "$@"; then
		step "ok: $bin ($want)"
	else
		echo "error: $bin does not report '$want'" >&2
		fail=1
	fi
}
check "$k8s_bin/kube-apiserver" "Kubernetes $K8S_VERSION" --version
check "$k8s_bin/kube-controller-manager" "Kubernetes $K8S_VERSION" --version
check "$k8s_bin/kubectl" "Client Version: $K8S_VERSION" version --client
check "$etcd_bin/etcd" "etcd Version: $etcd_ver" --version
step "total $(elapsed "$total_start")"
exit "$fail"
