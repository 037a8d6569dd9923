"""Golden files of raw deployment mode: Deployment, Service, HPA, Ingress or HTTPRoutes.

Each ``golden/raw/<case>/`` holds ``isvc.yaml`` and optionally ``config.yaml`` (ConfigMap
keys as objects). The plan is computed twice, as the reconciler does: once on an empty
cluster, then again once every child exists and the cluster has done its part (Deployments
complete, HTTPRoutes accepted). ``expected.yaml`` holds the children of the first plan (the
second must want the same ones) and ``status.yaml`` the second plan's status.

Regenerate with ``UPDATE_GOLDEN=1 pytest tests/unit/test_raw_golden.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfserving_operator.api.config import OperatorConfig, parse_operator_config
from kfserving_operator.reconcile.plan import Observed, plan_reconcile
from kfserving_operator.render import RENDER_TIME, dump_objects
from tests.support.raw import observed, simulated

GOLDEN = Path(__file__).resolve().parent / "golden" / "raw"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "isvc.yaml").is_file())
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def _config(case: Path) -> OperatorConfig:
    path = case / "config.yaml"
    if not path.is_file():
        return OperatorConfig()
    data = {key: json.dumps(value) for key, value in yaml.safe_load(path.read_text()).items()}
    base = OperatorConfig().to_configmap_data()
    result = parse_operator_config({**base, **data})
    assert result.problems == ()
    return result.config


def _isvc(case: Path) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((case / "isvc.yaml").read_text())
    obj["metadata"].update(uid="00000000-0000-0000-0000-000000000001", generation=1)
    return obj


def _check(path: Path, text: str) -> None:
    if UPDATE:
        path.write_text(text, encoding="utf-8")
        return
    assert path.is_file(), f"{path} missing; run with UPDATE_GOLDEN=1 and review it"
    assert path.read_text(encoding="utf-8") == text, f"{path.name} of {path.parent.name} differs"


def test_there_are_cases() -> None:
    assert len(CASES) >= 7


@pytest.mark.parametrize("case", CASES)
def test_raw_golden(case: str) -> None:
    where = GOLDEN / case
    config, isvc = _config(where), _isvc(where)
    first = plan_reconcile(isvc, config, Observed(ksvcs={}), RENDER_TIME)
    assert first.delete == ()
    assert not any(o["kind"] in ("VirtualService",) or o["apiVersion"].startswith(
        "serving.knative.dev") for o in first.apply), "raw mode must not need Knative or Istio"
    second = plan_reconcile({**isvc, "status": first.status}, config,
                            observed(simulated(o) for o in first.apply), RENDER_TIME)
    assert second.apply == first.apply
    assert second.delete == ()
    _check(where / "expected.yaml", dump_objects(list(first.apply)))
    _check(where / "status.yaml", yaml.safe_dump(second.status, sort_keys=True, width=1000))
