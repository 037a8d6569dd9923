#!/usr/bin/env bash
# Prove the lower bounds in pyproject.toml: install the lowest versions they allow for every
# direct dependency (uv's --resolution lowest-direct) into a venv of their own, import every
# module the operator loads at start-up, and run the unit tests there.
#
# The venv is cached under .cache/ and rebuilt only when pyproject.toml changes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
UV="${UV:-$ROOT/.venv/bin/uv}"
VENV="$ROOT/.cache/venv-lowest"
key="$(sha256sum pyproject.toml | cut -c1-16)"
stamp="$VENV/.installed-$key"

if [[ ! -f "$stamp" ]]; then
  rm -rf "$VENV"
  "$UV" venv --quiet --python "${PYTHON:-python3}" "$VENV"
  "$UV" pip install --quiet --python "$VENV/bin/python" --resolution lowest-direct -e '.[test]'
  touch "$stamp"
fi

echo "lowest allowed versions of the direct dependencies:"
"$ROOT/.venv/bin/python" - "$VENV/bin/python" <<'PY'
import subprocess, sys, tomllib
from packaging.requirements import Requirement
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
names = [Requirement(r).name for r in project["dependencies"]]
names += [Requirement(r).name for r in project["optional-dependencies"]["test"]]
code = ("import importlib.metadata as m, sys\n"
        "for n in sys.argv[1:]: print(f'  {n}=={m.version(n)}')")
subprocess.run([sys.argv[1], "-c", code, *names], check=True)
PY
"$VENV/bin/python" -c \
  'import kfserving_operator.cli, kfserving_operator.operator.main, kfserving_operator.k8s.api, kfserving_operator.webhooks.server, kfserving_operator.render'
"$VENV/bin/python" -m pytest tests/unit -q -p no:cacheprovider "$@"
