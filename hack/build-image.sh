#!/usr/bin/env bash
# Build the Dockerfile without Docker or a registry, run the result, and report its size.
#
#   hack/build-image.sh            # build, then check `kfserving-operator --version` in it
#   IMAGE=kfserving-operator:dev BASE_IMAGE=python:3.11-slim hack/build-image.sh
#
# - buildah and podman from Debian's packages, as root, with their own storage under
#   .cache/image (vfs driver: works on any filesystem, nothing mounted outside this checkout).
# - The base: BASE_IMAGE when given (it must already be in that storage or be pullable);
#   otherwise a Debian bookworm root made with debootstrap from the machine's apt mirror
#   (python3, python3-venv), committed once as localhost/kfserving-base:bookworm and reused.
#   The Dockerfile's FROM line is not edited: the base goes in as its BASE_IMAGE build argument.
# - The build's pip reaches PyPI through the host network; the host's CA bundle and a pip.conf
#   that names it are mounted for the RUN steps only (they are not in the image).
# - The check runs the image as it ships: its own USER (10001), a read-only root filesystem,
#   a tmpfs on /tmp, no network.
# Prints one summary line: image, size, build seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${KFSERVING_IMAGE_CACHE:-$ROOT/.cache/image}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/pyproject.toml")"
IMAGE="${IMAGE:-localhost/kfserving-operator:$VERSION}"
DEFAULT_BASE="localhost/kfserving-base:bookworm"
BASE_IMAGE="${BASE_IMAGE:-}"
CA_BUNDLE="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"

[[ $(id -u) == 0 ]] || { echo "build-image: needs root (buildah's chroot isolation)" >&2; exit 1; }

need=()
for tool in buildah podman debootstrap runc; do command -v "$tool" >/dev/null || need+=("$tool"); done
if ((${#need[@]})); then
  echo "build-image: installing ${need[*]} (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${need[@]}"
fi

mkdir -p "$WORK"
# podman on this kind of VM: runc (crun rejects the mixed cgroup setup), cgroupfs, file events,
# and ulimits the VM grants.
cat > "$WORK/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$WORK/containers.conf"
storage=(--root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)

# shellcheck source=hack/image-lib.sh
source "$ROOT/hack/image-lib.sh"

if [[ -z "$BASE_IMAGE" ]]; then
  BASE_IMAGE="$DEFAULT_BASE"
  image_exists "$BASE_IMAGE" || make_debian_base "$WORK" "$BASE_IMAGE"
fi
pull=(--pull=never)
image_exists "$BASE_IMAGE" || pull=()

printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$WORK/pip.conf"
echo "build-image: building $IMAGE from $BASE_IMAGE"
start=$SECONDS
buildah "${storage[@]}" bud --isolation chroot "${pull[@]}" --layers=false \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" \
  -v "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" -v "$WORK/pip.conf:/etc/pip.conf:ro" \
  -t "$IMAGE" -f "$ROOT/Dockerfile" "$ROOT" > "$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log" >&2; exit 1; }
build_seconds=$((SECONDS - start))

run=(podman "${storage[@]}" run --rm --network none --read-only --tmpfs /tmp)
user="$(podman "${storage[@]}" image inspect --format '{{.Config.User}}' "$IMAGE")"
[[ "$user" == "10001:10001" ]] || { echo "build-image: image USER is '$user', not 10001:10001" >&2; exit 1; }
uid="$("${run[@]}" --entrypoint id "$IMAGE" -u)"
[[ "$uid" == 10001 ]] || { echo "build-image: runs as UID $uid, not 10001" >&2; exit 1; }
version_line="$("${run[@]}" --entrypoint kfserving-operator "$IMAGE" --version)"
[[ "$version_line" == *"$VERSION"* ]] \
  || { echo "build-image: unexpected --version output: $version_line" >&2; exit 1; }
# Every module the operator imports at start-up, with the locked dependencies.
"${run[@]}" --entrypoint python3 "$IMAGE" -c \
  'import kfserving_operator.operator.main, kfserving_operator.k8s.api, kfserving_operator.webhooks.server'
"${run[@]}" "$IMAGE" --help >/dev/null

size="$(podman "${storage[@]}" image inspect --format '{{.Size}}' "$IMAGE")"
base_size="$(podman "${storage[@]}" image inspect --format '{{.Size}}' "$BASE_IMAGE")"
echo "build-image: --version in the image (UID $uid, read-only root): $version_line"
printf 'build-image: %s: %d MB (base %s %d MB, the operator layers %d MB); built in %d s\n' \
  "$IMAGE" $((size / 1000000)) "$BASE_IMAGE" $((base_size / 1000000)) \
  $(((size - base_size) / 1000000)) "$build_seconds"
