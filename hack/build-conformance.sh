#!/usr/bin/env bash
# Build the conformance checker (hack/conformance) into a git-ignored cache keyed
# by a hash of its sources (go.mod, go.sum and the non-test .go files), and point
# .cache/bin/conformance at it. The build is skipped when the binary for the
# current sources exists, so this is cheap to call before every run.
#
#   hack/build-conformance.sh && .cache/bin/conformance rendered.yaml
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/hack/conformance"
CACHE="${KFSERVING_TOOLS_CACHE:-$ROOT/.cache/tools}"
BIN_DIR="$ROOT/.cache/bin"

# Same conventions as hack/build-tools.sh: no parent go.work or vendoring
# GOFLAGS, never download a toolchain, static binary.
export GOWORK=off GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

hash_sources() {
  local files=(go.mod go.sum) f
  for f in *.go; do
    [[ "$f" == *_test.go ]] || files+=("$f")
  done
  # Sorted file names and contents: the same sources always give the same key.
  (cd "$SRC" && sha256sum "${files[@]}") | sha256sum | cut -c1-16
}

cd "$SRC"
key="$(hash_sources)"
out="$CACHE/conformance/$key"
bin="$out/conformance"

if [[ -x "$bin" ]]; then
  echo "conformance: cached in $out"
else
  echo "conformance: building $key (first build downloads modules)"
  mkdir -p "$out"
  tmp="$(mktemp "$out/conformance.tmp.XXXXXX")"
  trap 'rm -f "$tmp"' EXIT
  start=$SECONDS
  go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$tmp" .
  mv -f "$tmp" "$bin" # atomic: concurrent builds of the same key are safe
  trap - EXIT
  echo "conformance: built $bin in $((SECONDS - start))s"
fi

mkdir -p "$BIN_DIR"
ln -sfn "$bin" "$BIN_DIR/conformance"
echo "conformance: $BIN_DIR/conformance -> $bin"
