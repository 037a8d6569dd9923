"""examples/raw: every InferenceService is admitted and rendered in raw mode, with no Knative
or Istio object; the canary steps need Gateway API and are refused with a plain Ingress."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.render import RenderError, render_plan

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "raw").rglob("*.yaml"))
GATEWAY = OperatorConfig.model_validate({"ingress": {"enableGatewayApi": True}})


def _isvcs() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "InferenceService":
                found.append((str(path.relative_to(ROOT)), doc))
    return found


CASES = _isvcs()


def test_examples_exist() -> None:
    names = {Path(name).name for name, _ in CASES}
    assert {"sklearn.yaml", "transformer.yaml", "step-2-canary.yaml"} <= names


@pytest.mark.parametrize(("name", "isvc"), CASES, ids=[n for n, _ in CASES])
def test_raw_example_renders_without_knative(name: str, isvc: dict[str, Any]) -> None:
    plan = render_plan(isvc, GATEWAY)
    kinds = {o["kind"] for o in plan.apply}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "HTTPRoute"} <= kinds
    assert not [o for o in plan.apply if "knative" in o["apiVersion"]
                or "istio" in o["apiVersion"]]
    assert plan.status["deploymentMode"] == "RawDeployment"
    canary = isvc["spec"]["predictor"].get("canaryTrafficPercent") is not None
    if canary:
        with pytest.raises(RenderError, match="needs Gateway API routes"):
            render_plan(isvc, OperatorConfig())
    else:
        assert "Ingress" in {o["kind"] for o in render_plan(isvc, OperatorConfig()).apply}
