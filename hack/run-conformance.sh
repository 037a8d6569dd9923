#!/usr/bin/env bash
# Render every example and golden InferenceService with `kfserving-operator render` and run
# the output through Knative's and Istio's own Go code (hack/conformance). Fails on the first
# render error or on any object the checker rejects.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash hack/build-conformance.sh >/dev/null
PY="${PYTHON:-$ROOT/.venv/bin/python}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

# v1alpha2 manifests render converted; a directory renders as one stream (TrainedModels need
# their InferenceService in the same input).
inputs=(examples/*.yaml examples/canary/*.yaml examples/v1alpha2/*.yaml examples/multi-model)
for golden in tests/unit/golden/reconcile/*/isvc.yaml; do
  [[ -f "$golden" ]] && inputs+=("$golden")
done
n=0
for input in "${inputs[@]}"; do
  n=$((n + 1))
  "$PY" -m kfserving_operator render -f "$input" > "$OUT/$n.yaml" \
    || { echo "render failed for $input" >&2; exit 1; }
  echo "---" >> "$OUT/$n.yaml"
done
echo "rendered ${#inputs[@]} InferenceServices"
# Knative's warnings (insecure securityContext defaults, which are the user's choice) go to
# stderr; only errors fail an object, as in Knative's own webhook.
cat "$OUT"/*.yaml | .cache/bin/conformance - > "$OUT/report.txt" 2> "$OUT/warnings.txt" || {
  grep -v '^ok ' "$OUT/report.txt"; cat "$OUT/warnings.txt" >&2; exit 1; }
echo "$(grep -c '^warning' "$OUT/warnings.txt" || true) Knative warnings (not errors)"
tail -1 "$OUT/report.txt"
