#!/usr/bin/env bash
# Build the images the lane's real node runs, with buildah, from Debian and PyPI packages;
# nothing is pulled from a registry. Each image is saved as an OCI archive that the node's
# containerd imports (kfserving_operator/cluster/node.py); the example models are trained
# here with the images' pinned scikit-learn and xgboost.
#
#   hack/build-node-images.sh QUEUE_BINARY
#
# Output, under .cache/node-images/<key>/ (key: a hash of hack/node-images, this script and
# the queue-proxy binary, so editing a server or a pin rebuilds; an unchanged tree is skipped
# at once):
#   archives/*.tar   one OCI archive per image (names in images.txt)
#   models/          sklearn/iris, xgboost/iris, sklearn/empty
# Needs root (buildah's chroot isolation), gcc with a static libc (the pause binary).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/hack/node-images"
CACHE="${KFSERVING_NODE_IMAGES_CACHE:-$ROOT/.cache/node-images}"
QUEUE_BINARY="$(realpath "${1:?usage: build-node-images.sh QUEUE_BINARY}")"
CA_BUNDLE="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
KNATIVE_VERSION="${KNATIVE_VERSION:-v0.42.2}"
BASE="localhost/kfserving-lane-base:bookworm"

key="$( (cd "$SRC" && find . -type f | LC_ALL=C sort | xargs sha256sum; \
         sha256sum "$ROOT/hack/build-node-images.sh" "$ROOT/hack/image-lib.sh" "$QUEUE_BINARY" \
           | awk '{print $1}'; echo "$KNATIVE_VERSION") \
       | sha256sum | cut -c1-12)"
OUT="$CACHE/$key"
# `current` names the set the lane uses; replaced atomically (a symlink renamed over it).
point_current() { ln -sfn "$key" "$CACHE/current.tmp.$$" && mv -T "$CACHE/current.tmp.$$" "$CACHE/current"; }
if [[ -f "$OUT/images.txt" ]]; then point_current; echo "node images: cached in $OUT"; exit 0; fi
[[ $(id -u) == 0 ]] || { echo "build-node-images: needs root (buildah)" >&2; exit 1; }
need=()
for tool in buildah debootstrap gcc; do command -v "$tool" >/dev/null || need+=("$tool"); done
if ((${#need[@]})); then
  echo "node images: installing ${need[*]} (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${need[@]}"
fi

mkdir -p "$CACHE"
# Serialise with any other run on this cache (a second run waits, then finds it built).
exec 9>"$CACHE/.lock"
flock 9
if [[ -f "$OUT/images.txt" ]]; then point_current; echo "node images: cached in $OUT"; exit 0; fi

storage=(--root "$CACHE/storage" --runroot "$CACHE/run" --storage-driver overlay)
# shellcheck source=hack/image-lib.sh
source "$ROOT/hack/image-lib.sh"
TMP="$(mktemp -d "$CACHE/build.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/archives" "$TMP/models"
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$TMP/pip.conf"
started=$SECONDS

step() { echo "node images: $* ($((SECONDS - started))s)"; }

save() {  # save IMAGE FILE: the OCI archive the node imports
  buildah "${storage[@]}" push --quiet "$1" "oci-archive:$TMP/archives/$2.tar:$1" >/dev/null
  echo "$1 $2.tar" >> "$TMP/images.txt"
}

# Copy a binary into a scratch image with ENTRYPOINT; no shell, no libc needed (static).
static_image() {  # static_image IMAGE FILE BINARY PATH_IN_IMAGE [USER]
  local container
  container="$(buildah "${storage[@]}" from scratch)"
  buildah "${storage[@]}" copy --quiet "$container" "$3" "$4" >/dev/null
  buildah "${storage[@]}" config --entrypoint "[\"$4\"]" ${5:+--user "$5"} "$container"
  buildah "${storage[@]}" commit --quiet --rm "$container" "$1" >/dev/null
  save "$1" "$2"
}

# python_image NAME REQUIREMENTS VENV: one venv from pinned requirements, tagged by a hash of
# what goes in, so a rebuild for another reason (an edited server, a new queue-proxy) reuses
# it; the servers are copied in by entrypoint_image.
python_image() {
  local tag
  tag="$(cat "$SRC/$2" "$SRC/Containerfile.python" | sha256sum | cut -c1-12)"
  built="$1:$tag"
  if image_exists "$built"; then step "$built: cached"; return; fi
  step "building $built from $2 (pip: a few minutes the first time)"
  buildah "${storage[@]}" bud --quiet --isolation chroot --pull=never --layers=false \
    --build-arg "BASE_IMAGE=$BASE" --build-arg "REQUIREMENTS=$2" --build-arg "VENV=$3" \
    -v "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" -v "$TMP/pip.conf:/etc/pip.conf:ro" \
    -t "$built" -f "$SRC/Containerfile.python" "$SRC" > "$TMP/bud-$2.log" 2>&1 \
    || { tail -30 "$TMP/bud-$2.log" >&2; exit 1; }
}

entrypoint_image() {  # entrypoint_image FROM IMAGE FILE ENTRYPOINT_JSON: servers/ and an entrypoint
  local container
  container="$(buildah "${storage[@]}" from --pull=never "$1")"
  buildah "${storage[@]}" copy --quiet "$container" "$SRC/servers" /opt/servers >/dev/null
  # No CMD (cleared first, so buildah does not warn that it would pass the base's `python3`
  # to the new entrypoint).
  buildah "${storage[@]}" config --cmd '' "$container"
  buildah "${storage[@]}" config --entrypoint "$4" "$container"
  buildah "${storage[@]}" commit --quiet --rm "$container" "$2" >/dev/null
  save "$2" "$3"
}

image_exists "$BASE" || { step "Debian base"; make_debian_base "$CACHE" "$BASE"; }

step "pause and queue-proxy"
gcc -static -Os -s -o "$TMP/pause" "$SRC/pause.c"
static_image kind.local/kfserving-lane/pause:3.10 pause "$TMP/pause" /pause 65535:65535
static_image "kind.local/knative-serving/queue:$KNATIVE_VERSION" queue "$QUEUE_BINARY" /ko-app/queue \
  65532:65532

python_image localhost/kfserving-lane-kserve requirements-kserve.txt /opt/kserve
kserve="$built"
entrypoint_image "$kserve" kind.local/kfserving/sklearnserver:lane \
  sklearnserver '["python", "/opt/servers/model_servers.py", "--framework", "sklearn"]'
entrypoint_image "$kserve" kind.local/kfserving/xgbserver:lane \
  xgbserver '["python", "/opt/servers/model_servers.py", "--framework", "xgboost"]'
entrypoint_image "$kserve" kind.local/kfserving/iris-transformer:lane \
  iris-transformer '["python", "/opt/servers/iris_transformer.py"]'

step "training the example models"
container="$(buildah "${storage[@]}" from --pull=never kind.local/kfserving/sklearnserver:lane)"
buildah "${storage[@]}" run --isolation chroot -v "$TMP/models:/out" "$container" \
  python /opt/servers/train_models.py /out > "$TMP/train.log" 2>&1 \
  || { cat "$TMP/train.log" >&2; exit 1; }
buildah "${storage[@]}" rm "$container" >/dev/null

python_image localhost/kfserving-lane-storage requirements-storage.txt /opt/storage
entrypoint_image "$built" \
  kind.local/kfserving/storage-initializer:lane storage-initializer \
  '["python", "/opt/servers/storage_initializer.py"]'

python_image localhost/kfserving-lane-mlserver requirements-mlserver.txt /opt/mlserver
entrypoint_image "$built" kind.local/kfserving/mlserver:lane \
  mlserver '["mlserver", "start", "/mnt/models"]'

mkdir -p "$OUT"
rm -rf "$OUT/archives" "$OUT/models"
mv "$TMP/archives" "$TMP/models" "$OUT/"
mv "$TMP/images.txt" "$OUT/images.txt"   # last: its presence means the set is complete
point_current
# Earlier sets (other keys) are a gigabyte each and nothing points at them any more.
find "$CACHE" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
  -regex '.*/[0-9a-f]{12}' ! -name "$key" -exec rm -rf {} +
step "done: $(du -sh "$OUT/archives" | cut -f1) of archives in $OUT"
