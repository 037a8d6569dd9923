#!/usr/bin/env bash
# Build the control-plane binaries the tests run against, from Go modules, into a
# git-ignored cache keyed by version. Each tool is skipped when its binary exists, so
# this is cheap to call on every `make test`.
#
#   hack/build-tools.sh all    everything (what `make tools` and CI build)
#   hack/build-tools.sh lane   only what `make run` needs: the plane plus the Knative lane
#                              (etcd, kube-apiserver/-controller-manager/-scheduler, kubectl,
#                              kubelet, kube-proxy, KWOK, Knative Serving, the real node's
#                              images, MinIO, Traefik, CoreDNS); no helm
#   hack/build-tools.sh plane  only the control plane (the fallback when the lane cannot run)
#   hack/build-tools.sh k8s|etcd|helm|kwok|knative|node|minio|traefik|coredns   one of them
#   hack/build-tools.sh probe  a one-file Go tool that only tests this script's locking
#
# Runs may overlap (`make run` in one shell, `make test` in another): each tool is built
# under a lock of its own, so a second run waits for the first and then finds it cached.
# Each build writes into a directory of its own and renames it into place in one step.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${KFSERVING_TOOLS_CACHE:-$ROOT/.cache/tools}"
K8S_VERSION="${K8S_VERSION:-v1.35.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
# Knative Serving v0.42.2 is Knative 1.15.2; the pins of its dependencies live in
# hack/knativebin/go.mod. Newer releases' dependencies are not served by the module proxy.
KNATIVE_VERSION="${KNATIVE_VERSION:-v0.42.2}"

# A parent go.work or a vendoring GOFLAGS would silently change module resolution;
# GOTOOLCHAIN=local makes a too-new go line fail instead of downloading a toolchain.
export GOWORK=off GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

k8s_minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

# kubelet and kube-proxy: the Knative lane's real node (kfserving_operator/cluster/node.py).
K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)

build_k8s() {
  local out="$CACHE/k8s/$K8S_VERSION" missing=() name
  for name in "${K8S_BINARIES[@]}"; do
    [[ -x "$out/$name" ]] || missing+=("$name")
  done
  if ((${#missing[@]} == 0)); then echo "k8s $K8S_VERSION: cached in $out"; return; fi
  local ldf="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$k8s_minor"
    ldf="$ldf -X $p.gitTreeState=clean -X $p.buildDate=$build_date"
  done
  # Only the missing binaries: adding one (kube-scheduler came with the Knative lane)
  # does not rebuild the others.
  local packages=()
  for name in "${missing[@]}"; do packages+=("k8s.io/kubernetes/cmd/$name"); done
  local tmp; tmp="$(scratch "$out")"
  timed "k8s $K8S_VERSION: building ${missing[*]}" \
    bash -c 'cd "$1" && shift && exec go build "$@"' _ "$ROOT/hack/k8sbin" \
      -trimpath -buildvcs=false -tags selinux,notest -ldflags "$ldf" -o "$tmp/" "${packages[@]}"
  mkdir -p "$out"
  for name in "${missing[@]}"; do mv -f "$tmp/$name" "$out/$name"; done
  rm -rf "$tmp"
}

build_etcd() {
  local out="$CACHE/etcd/$ETCD_VERSION"
  if [[ -x "$out/etcd" ]]; then echo "etcd $ETCD_VERSION: cached in $out"; return; fi
  echo "etcd $ETCD_VERSION: building"
  local tmp; tmp="$(scratch "$out")"
  (cd "$ROOT/hack/etcdbin" && go build -trimpath -buildvcs=false -ldflags "-s -w" \
     -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
  move_into_place "$tmp" "$out"
}

build_helm() {
  local out="$CACHE/helm/$HELM_VERSION"
  if [[ -x "$out/helm" ]]; then echo "helm $HELM_VERSION: cached in $out"; return; fi
  echo "helm $HELM_VERSION: building"
  local tmp; tmp="$(scratch "$out")"
  (cd "$ROOT/hack/helmbin" && go build -trimpath -buildvcs=false \
     -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor" \
     -o "$tmp/helm" helm.sh/helm/v3/cmd/helm)
  move_into_place "$tmp" "$out"
}

build_kwok() {
  local out="$CACHE/kwok/$KWOK_VERSION"
  if [[ -x "$out/kwok" ]]; then echo "kwok $KWOK_VERSION: cached in $out"; return; fi
  local tmp; tmp="$(scratch "$out")"
  timed "kwok $KWOK_VERSION: building" \
    bash -c 'cd "$1" && shift && exec go build "$@"' _ "$ROOT/hack/kwokbin" \
      -trimpath -buildvcs=false -ldflags "-s -w" -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok
  move_into_place "$tmp" "$out"
}

# Knative Serving: upstream's webhook, autoscaler, activator and queue-proxy unchanged, plus
# our controller main (hack/knativebin/controller; its doc comment says why). The queue-proxy
# goes into the real node's image (hack/build-node-images.sh); the others run as processes in
# the lane's namespace. The cache key covers the version and our sources, so editing the
# main rebuilds.
KNATIVE_BINARIES=(knative-controller knative-webhook knative-autoscaler knative-activator knative-queue)

knative_dir() {
  local key
  key="$(cd "$ROOT/hack/knativebin" && find . -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \
         | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-12)"
  echo "$CACHE/knative/$KNATIVE_VERSION-$key"
}

build_knative() {
  local out name missing=0; out="$(knative_dir)"
  for name in "${KNATIVE_BINARIES[@]}"; do [[ -x "$out/$name" ]] || missing=1; done
  if ((missing == 0)); then echo "knative $KNATIVE_VERSION: cached in $out"; return; fi
  local tmp; tmp="$(scratch "$out")"
  # One `go build` for all five: shared packages compile once.
  timed "knative $KNATIVE_VERSION: building controller, webhook, autoscaler, activator, queue-proxy" \
    bash -c 'cd "$1" && shift && exec go build "$@"' _ "$ROOT/hack/knativebin" \
      -trimpath -buildvcs=false -ldflags "-s -w" -o "$tmp/" ./controller \
      knative.dev/serving/cmd/webhook knative.dev/serving/cmd/autoscaler \
      knative.dev/serving/cmd/activator knative.dev/serving/cmd/queue
  for name in controller webhook autoscaler activator queue; do mv "$tmp/$name" "$tmp/knative-$name"; done
  move_into_place "$tmp" "$out"
}

# A tool of one small file, built like the others: tests/integration/test_build_tools.py
# races two runs of this script on it. Not part of any group.
build_probe() {
  local out="$CACHE/probe/v1"
  if [[ -x "$out/probe" ]]; then echo "probe: cached in $out"; return; fi
  echo "probe: building"
  local tmp; tmp="$(scratch "$out")"
  (cd "$ROOT/hack/probebin" && go build -trimpath -buildvcs=false -o "$tmp/probe" .)
  move_into_place "$tmp" "$out"
}

# A fresh build directory beside `out`, unique to this run. Leftovers of killed builds of
# the same tool go first (the tool's lock is held, so none of them is still in use).
scratch() {
  local out="$1"
  rm -rf "$out".tmp*
  mkdir -p "$(dirname "$out")"
  local tmp; tmp="$(mktemp -d "$out.tmp.XXXXXX")"
  chmod 755 "$tmp"
  echo "$tmp"
}

# Replace `out` by the finished `tmp` with one rename: `out` is absent or complete, never
# half-written. Whatever `out` held is incomplete (its binaries were not all there).
move_into_place() {
  local tmp="$1" out="$2"
  rm -rf "$out"
  mv -T "$tmp" "$out"
}

# Run a command holding the lock `name` in the cache; a second holder waits for it.
with_lock() {
  local name="$1"; shift
  mkdir -p "$CACHE/.locks"
  (
    if ! flock -n 9; then
      echo "$name: another run of this script holds it; waiting"
      flock 9
    fi
    "$@"
  ) 9>"$CACHE/.locks/$name.lock"
}

# Tools built from one Go module each, through the wrapper module hack/<name>bin.
declare -A MODULE_OF=([minio]=github.com/minio/minio [traefik]=github.com/traefik/traefik/v3
                      [coredns]=github.com/coredns/coredns)

# The version of MODULE that the wrapper module hack/DIR/go.mod requires.
pinned_version() { awk -v m="$2" '$1 == "require" && $2 == m {print $3}' "$ROOT/hack/$1/go.mod"; }

# One tool built unchanged from its module (MODULE_OF), cached by the pinned version:
# module_tool NAME PACKAGE [EXTRA_LDFLAGS] ({version} in them is the pinned version).
module_tool() {
  local name="$1" package="$2" ldflags="-s -w ${3:-}" version out
  version="$(pinned_version "${name}bin" "${MODULE_OF[$1]}")"
  out="$CACHE/$name/$version"
  if [[ -x "$out/$name" ]]; then echo "$name $version: cached in $out"; return; fi
  local tmp; tmp="$(scratch "$out")"
  timed "$name $version: building" \
    bash -c 'cd "$1" && shift && exec go build "$@"' _ "$ROOT/hack/${name}bin" \
      -trimpath -buildvcs=false -ldflags "${ldflags/\{version\}/$version}" -o "$tmp/$name" "$package"
  move_into_place "$tmp" "$out"
}

# MinIO, the lane's model store (kfserving_operator/cluster/modelstore.py); MinIO tags its
# releases by date, so hack/miniobin pins a pseudo-version.
build_minio() { module_tool minio github.com/minio/minio; }

# Traefik, the lane's ingress (its Knative provider implements KIngress); hack/traefikbin
# repeats Traefik's replace directives.
build_traefik() {
  module_tool traefik github.com/traefik/traefik/v3/cmd/traefik \
    "-X github.com/traefik/traefik/v3/pkg/version.Version={version}"
}

# CoreDNS, the lane's cluster DNS (its kubernetes plugin).
build_coredns() { module_tool coredns github.com/coredns/coredns; }

# The real node's images (pause, queue-proxy, storage initializer, model servers) and the
# example models: hack/build-node-images.sh, cached by a hash of what goes in.
# The real node's runtime comes from Debian's packages: containerd, runc, the CNI plugins,
# iproute2 (the pod bridge) and iptables (kube-proxy). Installed when missing (root).
ensure_node_runtime() {
  local need=()
  command -v containerd >/dev/null || need+=(containerd)
  command -v runc >/dev/null || need+=(runc)
  [[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
  command -v ip >/dev/null || need+=(iproute2)
  command -v iptables >/dev/null || need+=(iptables)
  ((${#need[@]})) || return 0
  [[ $(id -u) == 0 ]] || { echo "the lane's node needs Debian's ${need[*]}: install them as root" >&2; return 1; }
  echo "node runtime: installing ${need[*]} (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${need[@]}"
}

build_node_images() {
  ensure_node_runtime
  build_knative
  bash "$ROOT/hack/build-node-images.sh" "$(knative_dir)/knative-queue"
}

# Run a build, printing a line when it starts, every 30 s while it runs (a cold build
# takes minutes and prints nothing of its own), and its duration at the end.
timed() {
  local what="$1"; shift
  echo "$what (cold: minutes on 2 cores; later runs reuse the cache)"
  local start=$SECONDS
  "$@" & local pid=$!
  while ! wait_for_pid "$pid" 30; do
    echo "  ... $what: $((SECONDS - start))s"
  done
  wait "$pid" || { echo "FAILED: $what" >&2; return 1; }
  echo "  done in $((SECONDS - start))s"
}

# True once pid has exited (within `secs`), false if it is still running.
wait_for_pid() {
  local pid="$1" secs="$2" i
  for ((i = 0; i < secs * 2; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  return 1
}

# Stable paths for everything else: .cache/bin/<tool> points at the pinned build.
link_bins() {
  # Logical path: with .cache/tools a symlink (a shared cache), bin/ stays in this checkout.
  local bin; bin="$(cd "$CACHE/.." && pwd)/bin"
  mkdir -p "$bin"
  ln -sf "$CACHE/k8s/$K8S_VERSION/kube-apiserver" "$bin/kube-apiserver"
  ln -sf "$CACHE/k8s/$K8S_VERSION/kube-controller-manager" "$bin/kube-controller-manager"
  ln -sf "$CACHE/k8s/$K8S_VERSION/kubectl" "$bin/kubectl"
  [[ -x "$CACHE/k8s/$K8S_VERSION/kube-scheduler" ]] \
    && ln -sf "$CACHE/k8s/$K8S_VERSION/kube-scheduler" "$bin/kube-scheduler"
  [[ -x "$CACHE/kwok/$KWOK_VERSION/kwok" ]] && ln -sf "$CACHE/kwok/$KWOK_VERSION/kwok" "$bin/kwok"
  local knative name; knative="$(knative_dir)"
  for name in "${KNATIVE_BINARIES[@]}"; do
    [[ -x "$knative/$name" ]] && ln -sf "$knative/$name" "$bin/$name"
  done
  rm -f "$bin/kingress-istio"  # an earlier lane's KIngress stand-in, replaced by Traefik
  [[ -x "$CACHE/k8s/$K8S_VERSION/kubelet" ]] && ln -sf "$CACHE/k8s/$K8S_VERSION/kubelet" "$bin/kubelet"
  [[ -x "$CACHE/k8s/$K8S_VERSION/kube-proxy" ]] && ln -sf "$CACHE/k8s/$K8S_VERSION/kube-proxy" "$bin/kube-proxy"
  local built
  for name in "${!MODULE_OF[@]}"; do
    built="$CACHE/$name/$(pinned_version "${name}bin" "${MODULE_OF[$name]}")/$name"
    [[ -x "$built" ]] && ln -sf "$built" "$bin/$name"
  done
  ln -sf "$CACHE/etcd/$ETCD_VERSION/etcd" "$bin/etcd"
  [[ -x "$CACHE/helm/$HELM_VERSION/helm" ]] && ln -sf "$CACHE/helm/$HELM_VERSION/helm" "$bin/helm"
  return 0
}

# Every build_<tool> (and link_bins) runs under its tool's lock: a function defined above
# is renamed to unlocked_<name> and called through with_lock, so a build function added
# later is locked without more ado.
for fn in $(compgen -A function build_) link_bins; do
  eval "unlocked_$(declare -f "$fn")"
  eval "$fn() { with_lock ${fn#build_} unlocked_$fn \"\$@\"; }"
done

what="${1:-all}"
case "$what" in
  k8s) build_k8s ;;
  etcd) build_etcd ;;
  helm) build_helm ;;
  kwok) build_kwok ;;
  knative) build_knative ;;
  probe) build_probe ;;
  plane) build_etcd; build_k8s ;;
  node) build_node_images; build_minio; build_traefik; build_coredns ;;
  minio) build_minio ;;
  traefik) build_traefik ;;
  coredns) build_coredns ;;
  lane) build_etcd; build_k8s; build_kwok; build_knative; build_node_images; build_minio
        build_traefik; build_coredns ;;
  all) build_etcd; build_k8s; build_helm; build_kwok; build_knative; build_node_images; build_minio
       build_traefik; build_coredns ;;
  *) echo "usage: $0 [all|lane|plane|k8s|etcd|helm|kwok|knative|node|minio|traefik|coredns|probe]" >&2
     exit 2 ;;
esac
link_bins
