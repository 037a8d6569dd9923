#!/usr/bin/env bash
# Build the control-plane binaries the tests run against, from Go modules, into a
# git-ignored cache keyed by version. Each tool is skipped when its binary exists, so
# this is cheap to call on every `make test`.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${KFSERVING_TOOLS_CACHE:-$ROOT/.cache/tools}"
K8S_VERSION="${K8S_VERSION:-v1.35.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"

# A parent go.work or a vendoring GOFLAGS would silently change module resolution;
# GOTOOLCHAIN=local makes a too-new go line fail instead of downloading a toolchain.
export GOWORK=off GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

k8s_minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

build_k8s() {
  local out="$CACHE/k8s/$K8S_VERSION"
  if [[ -x "$out/kube-apiserver" && -x "$out/kube-controller-manager" && -x "$out/kubectl" ]]; then
    echo "k8s $K8S_VERSION: cached in $out"; return
  fi
  echo "k8s $K8S_VERSION: building (slow the first time)"
  local ldf="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$k8s_minor"
    ldf="$ldf -X $p.gitTreeState=clean -X $p.buildDate=$build_date"
  done
  mkdir -p "$out.tmp"
  (cd "$ROOT/hack/k8sbin" && go build -trimpath -buildvcs=false -tags selinux,notest \
     -ldflags "$ldf" -o "$out.tmp/" \
     k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
     k8s.io/kubernetes/cmd/kubectl)
  rm -rf "$out"; mv "$out.tmp" "$out"
}

build_etcd() {
  local out="$CACHE/etcd/$ETCD_VERSION"
  if [[ -x "$out/etcd" ]]; then echo "etcd $ETCD_VERSION: cached in $out"; return; fi
  echo "etcd $ETCD_VERSION: building"
  mkdir -p "$out.tmp"
  (cd "$ROOT/hack/etcdbin" && go build -trimpath -buildvcs=false -ldflags "-s -w" \
     -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3)
  rm -rf "$out"; mv "$out.tmp" "$out"
}

build_helm() {
  local out="$CACHE/helm/$HELM_VERSION"
  if [[ -x "$out/helm" ]]; then echo "helm $HELM_VERSION: cached in $out"; return; fi
  echo "helm $HELM_VERSION: building"
  mkdir -p "$out.tmp"
  (cd "$ROOT/hack/helmbin" && go build -trimpath -buildvcs=false \
     -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor" \
     -o "$out.tmp/helm" helm.sh/helm/v3/cmd/helm)
  rm -rf "$out"; mv "$out.tmp" "$out"
}

# Stable paths for everything else: .cache/bin/<tool> points at the pinned build.
link_bins() {
  mkdir -p "$CACHE/../bin"
  local bin; bin="$(cd "$CACHE/.." && pwd)/bin"
  ln -sf "$CACHE/k8s/$K8S_VERSION/kube-apiserver" "$bin/kube-apiserver"
  ln -sf "$CACHE/k8s/$K8S_VERSION/kube-controller-manager" "$bin/kube-controller-manager"
  ln -sf "$CACHE/k8s/$K8S_VERSION/kubectl" "$bin/kubectl"
  ln -sf "$CACHE/etcd/$ETCD_VERSION/etcd" "$bin/etcd"
  [[ -x "$CACHE/helm/$HELM_VERSION/helm" ]] && ln -sf "$CACHE/helm/$HELM_VERSION/helm" "$bin/helm"
  return 0
}

what="${1:-all}"
case "$what" in
  k8s) build_k8s ;;
  etcd) build_etcd ;;
  helm) build_helm ;;
  all) build_etcd; build_k8s; build_helm ;;
  *) echo "usage: $0 [all|k8s|etcd|helm]" >&2; exit 2 ;;
esac
link_bins
