"""``render`` of v1alpha2 InferenceServices and of TrainedModels (examples included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kfserving_operator.render import render_main

ROOT = Path(__file__).resolve().parents[2]
V1ALPHA2_EXAMPLES = sorted((ROOT / "examples" / "v1alpha2").glob("*.yaml"))
MULTI_MODEL = ROOT / "examples" / "multi-model"


def rendered(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, list[dict[str, Any]],
                                                                    str]:
    code = render_main(str(path), None)
    out, err = capsys.readouterr()
    return code, [d for d in yaml.safe_load_all(out) if d], err


@pytest.mark.parametrize("example", V1ALPHA2_EXAMPLES, ids=[p.stem for p in V1ALPHA2_EXAMPLES])
def test_v1alpha2_examples_render_as_their_v1beta1_form(
        example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, objects, err = rendered(capsys, example)
    assert (code, err) == (0, "")
    name = yaml.safe_load(example.read_text())["metadata"]["name"]
    assert ("Service", f"{name}-predictor-default") in {
        (o["kind"], o["metadata"]["name"]) for o in objects}


def test_v1alpha2_parallelism_and_service_account_reach_the_revision(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "isvc.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "serving.kubeflow.org/v1alpha2", "kind": "InferenceService",
        "metadata": {"name": "old"},
        "spec": {"default": {"predictor": {"parallelism": 3, "serviceAccountName": "sa",
                                           "xgboost": {"storageUri": "gs://m/x", "nthread": 2}}}},
    }))
    code, objects, _ = rendered(capsys, path)
    assert code == 0
    template = objects[0]["spec"]["template"]["spec"]
    assert template["containerConcurrency"] == 3
    assert template["serviceAccountName"] == "sa"
    assert "--nthread=2" in template["containers"][0]["args"]


def test_v1alpha2_canary_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    endpoint = {"predictor": {"sklearn": {"storageUri": "gs://m/s"}}}
    path = tmp_path / "isvc.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "serving.kubeflow.org/v1alpha2", "kind": "InferenceService",
        "metadata": {"name": "old"}, "spec": {"default": endpoint, "canary": endpoint}}))
    code, _, err = rendered(capsys, path)
    assert code == 1
    assert "spec.canary: Canary rollout is no longer supported on v1alpha2" in err


def test_multi_model_example_renders_its_model_config(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, objects, err = rendered(capsys, MULTI_MODEL)
    assert (code, err) == (0, "")
    [configmap] = [o for o in objects if o["kind"] == "ConfigMap"]
    assert configmap["metadata"]["name"] == "modelconfig-sklearn-mms-0"
    models = yaml.safe_load(configmap["data"]["models.json"])
    assert [m["modelName"] for m in models] == ["iris-a", "iris-b"]
    assert models[0]["modelSpec"] == {"storageUri": "gs://kfserving-samples/models/sklearn/iris",
                                      "framework": "sklearn", "memory": "256Mi"}


def test_trained_model_needs_its_parent_in_the_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = rendered(capsys, MULTI_MODEL / "2-trainedmodels.yaml")
    assert code == 1
    assert "TrainedModel iris-a: its InferenceService 'sklearn-mms' is not in the input" in err


def test_a_model_that_does_not_fit_is_an_error(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all((MULTI_MODEL / "2-trainedmodels.yaml").read_text()))
    docs[1]["spec"]["model"]["memory"] = "1Gi"
    isvc = yaml.safe_load((MULTI_MODEL / "1-inferenceservice.yaml").read_text())
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump_all([isvc, *docs]))
    code, _, err = rendered(capsys, path)
    assert code == 1
    assert "TrainedModel iris-b: not written to ConfigMap modelconfig-sklearn-mms-0" in err
