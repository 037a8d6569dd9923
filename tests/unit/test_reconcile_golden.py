"""Golden files: every framework and feature rendered to Knative/Istio/core objects.

Each ``golden/reconcile/<case>/isvc.yaml`` is rendered like ``kfserving-operator render``
does (admission defaulting + validation, Knative Services simulated Ready). The children
must equal ``expected.yaml`` and the resulting status ``status.yaml``.

Regenerate with ``UPDATE_GOLDEN=1 pytest tests/unit/test_reconcile_golden.py`` and review the
diff: the committed files are the specification.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.render import dump_objects, render_main, render_objects, render_plan

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden" / "reconcile"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "isvc.yaml").is_file())
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
CONFORMANCE = ROOT / ".cache" / "bin" / "conformance"


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _check(path: Path, actual_text: str, actual: Any, loader: Any) -> None:
    if UPDATE:
        path.write_text(actual_text, encoding="utf-8")
        return
    assert path.is_file(), f"{path} missing; run with UPDATE_GOLDEN=1 and review it"
    expected = loader(path.read_text(encoding="utf-8"))
    assert actual == expected, f"{path.relative_to(ROOT)} differs"


def test_every_case_has_expectations() -> None:
    assert len(CASES) >= 25
    if not UPDATE:
        for case in CASES:
            assert (GOLDEN / case / "expected.yaml").is_file(), case
            assert (GOLDEN / case / "status.yaml").is_file(), case


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    isvc = _load(GOLDEN / case / "isvc.yaml")
    config = OperatorConfig()
    plan = render_plan(isvc, config)
    objects = list(plan.apply)
    _check(
        GOLDEN / case / "expected.yaml",
        dump_objects(objects),
        objects,
        lambda text: [d for d in yaml.safe_load_all(text) if d is not None],
    )
    _check(
        GOLDEN / case / "status.yaml",
        yaml.safe_dump(plan.status, sort_keys=True, width=1000),
        plan.status,
        yaml.safe_load,
    )


@pytest.mark.parametrize("case", CASES)
def test_golden_is_deterministic(case: str) -> None:
    isvc = _load(GOLDEN / case / "isvc.yaml")
    first = dump_objects(render_objects(isvc, OperatorConfig()))
    second = dump_objects(render_objects(isvc, OperatorConfig()))
    assert first == second


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_render(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert render_main(str(example), None) == 0
    out, err = capsys.readouterr()
    assert err == ""
    kinds = [(d["apiVersion"], d["kind"]) for d in yaml.safe_load_all(out) if d]
    assert ("serving.knative.dev/v1", "Service") in kinds
    assert ("v1", "Service") in kinds
    assert ("networking.istio.io/v1beta1", "VirtualService") in kinds


@pytest.mark.skipif(
    not CONFORMANCE.exists(), reason="conformance checker not built (hack/build-conformance.sh)"
)
def test_golden_children_pass_knative_and_istio_validation() -> None:
    """Knative's SetDefaults+Validate and Istio's strict decoding accept every golden child."""
    files = [GOLDEN / case / "expected.yaml" for case in CASES]
    result = subprocess.run(
        [str(CONFORMANCE), *map(str, files)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
