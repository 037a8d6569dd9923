"""``kfserving-operator render``: files, stdin, config, webhook-style errors, determinism."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.render import render_main, render_objects, simulated_ready_ksvcs

SKLEARN = """\
apiVersion: serving.kubeflow.org/v1beta1
kind: InferenceService
metadata:
  name: sklearn-iris
spec:
  predictor:
    sklearn:
      storageUri: gs://kfserving-samples/models/sklearn/iris
"""
TRITON = """\
apiVersion: serving.kubeflow.org/v1beta1
kind: InferenceService
metadata:
  name: triton
  namespace: models
spec:
  predictor:
    triton:
      storageUri: gs://bucket/triton
"""


def run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, config: str | None = None
) -> tuple[int, str, str]:
    path = tmp_path / "isvc.yaml"
    path.write_text(text, encoding="utf-8")
    config_path = None
    if config is not None:
        config_path = tmp_path / "config.yaml"
        config_path.write_text(config, encoding="utf-8")
    code = render_main(str(path), str(config_path) if config_path else None)
    out, err = capsys.readouterr()
    return code, out, err


def docs(out: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(out) if d]


def test_render_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, tmp_path, SKLEARN)
    assert (code, err) == (0, "")
    objects = docs(out)
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Service", "sklearn-iris-predictor-default"),
        ("Service", "sklearn-iris"),
        ("VirtualService", "sklearn-iris"),
    ]
    assert {o["metadata"]["namespace"] for o in objects} == {"default"}
    uid = objects[0]["metadata"]["ownerReferences"][0]["uid"]
    assert uid and all(o["metadata"]["ownerReferences"][0]["uid"] == uid for o in objects)


def test_render_stdin_multiple_documents(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(SKLEARN + "---\n" + TRITON))
    assert render_main("-", None) == 0
    out, err = capsys.readouterr()
    assert err == ""
    names = [o["metadata"]["name"] for o in docs(out)]
    assert names == [
        "sklearn-iris-predictor-default", "sklearn-iris", "sklearn-iris",
        "triton-predictor-default", "triton", "triton",
    ]  # fmt: skip


def test_render_is_deterministic(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    first = run(capsys, tmp_path, SKLEARN)
    second = run(capsys, tmp_path, SKLEARN)
    assert first == second


def test_invalid_isvc_is_denied_like_the_webhook(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = SKLEARN.replace("    sklearn:", "    minReplicas: -1\n    sklearn:")
    code, out, err = run(capsys, tmp_path, bad)
    assert code == 1
    assert out == ""
    assert "admission webhook denied: spec.predictor.minReplicas: must be greater" in err


def test_unknown_field_is_denied(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, tmp_path, SKLEARN.replace("storageUri", "storageURI"))
    assert code == 1
    assert "admission webhook denied: spec.predictor.sklearn.storageURI" in err


def test_other_kinds_and_bad_yaml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, tmp_path, "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n")
    assert code == 1 and "expected kind InferenceService" in err
    code, _, err = run(capsys, tmp_path, "a: [1,\n")
    assert code == 1 and "cannot parse YAML" in err
    code, _, err = run(capsys, tmp_path, "")
    assert code == 1 and "contains no InferenceService" in err
    assert render_main(str(tmp_path / "missing.yaml"), None) == 1
    assert "cannot read" in capsys.readouterr().err


def test_config_map_is_used_and_problems_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "inferenceservice-config", "namespace": "kfserving-system"},
        "data": {
            "ingress": json.dumps({"ingressDomain": "models.corp.io", "urlScheme": "https"}),
            "predictors": "{not json",
        },
    }
    code, out, err = run(capsys, tmp_path, SKLEARN, yaml.safe_dump(configmap))
    assert code == 0
    assert "key 'predictors': not valid JSON" in err
    vs = docs(out)[-1]
    assert "sklearn-iris.default.models.corp.io" in vs["spec"]["hosts"]


def test_simulated_ready_ksvcs() -> None:
    isvc = yaml.safe_load(SKLEARN)
    simulated = simulated_ready_ksvcs(isvc, OperatorConfig())
    status = simulated["predictor"]["status"]
    assert status["url"] == "http://sklearn-iris-predictor-default.default.example.com"
    assert status["address"] == {
        "url": "http://sklearn-iris-predictor-default.default.svc.cluster.local"
    }
    assert status["latestReadyRevisionName"] == "sklearn-iris-predictor-default-00001"
    assert status["traffic"] == [
        {
            "revisionName": "sklearn-iris-predictor-default-00001",
            "latestRevision": True,
            "percent": 100,
        }
    ]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True",
        "RoutesReady": "True",
        "ConfigurationsReady": "True",
    }


def test_render_objects_does_not_modify_input() -> None:
    isvc = yaml.safe_load(SKLEARN)
    before = json.dumps(isvc, sort_keys=True)
    render_objects(isvc, OperatorConfig())
    assert json.dumps(isvc, sort_keys=True) == before
