"""The v1alpha2 version of the InferenceService CRD and the TrainedModel CRD."""

from __future__ import annotations

from pathlib import Path

from kfserving_operator.api.crd import (
    build_crd,
    build_trained_model_crd,
    render_trained_model_crd_yaml,
)

ROOT = Path(__file__).resolve().parents[2]


def test_committed_trained_model_crd_is_up_to_date() -> None:
    path = ROOT / "crds" / "serving.kubeflow.org_trainedmodels.yaml"
    assert path.read_text() == render_trained_model_crd_yaml(), (
        "crds/serving.kubeflow.org_trainedmodels.yaml is stale: run make crds")


def test_v1alpha2_is_served_not_stored_and_converted_by_webhook() -> None:
    spec = build_crd()["spec"]
    v1alpha2 = spec["versions"][1]
    assert (v1alpha2["name"], v1alpha2["served"], v1alpha2["storage"]) == (
        "v1alpha2", True, False)
    assert v1alpha2["subresources"] == {"status": {}}
    assert [(c["name"], c["type"], c["jsonPath"]) for c in v1alpha2[
        "additionalPrinterColumns"]] == [
        ("URL", "string", ".status.url"),
        ("Ready", "string", ".status.conditions[?(@.type=='Ready')].status"),
        ("Default Traffic", "integer", ".status.traffic"),
        ("Canary Traffic", "integer", ".status.canaryTraffic"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]
    schema = v1alpha2["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert schema["required"] == ["default"]
    predictor = schema["properties"]["default"]["properties"]["predictor"]["properties"]
    assert {"custom", "sklearn", "xgboost", "parallelism", "serviceAccountName"} <= set(predictor)
    assert predictor["xgboost"]["properties"]["nthread"]["type"] == "integer"
    assert spec["conversion"] == {
        "strategy": "Webhook",
        "webhook": {
            "conversionReviewVersions": ["v1"],
            "clientConfig": {"service": {"name": "kfserving-webhook-server-service",
                                         "namespace": "kfserving-system",
                                         "path": "/convert", "port": 443}},
        },
    }


def test_trained_model_crd() -> None:
    crd = build_trained_model_crd()
    assert crd["metadata"]["name"] == "trainedmodels.serving.kubeflow.org"
    assert crd["spec"]["names"]["shortNames"] == ["tm"]
    [version] = crd["spec"]["versions"]
    assert (version["name"], version["storage"]) == ("v1alpha1", True)
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["URL", "Ready", "Age"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["inferenceService", "model"]
    model = spec["properties"]["model"]
    assert model["required"] == ["storageUri", "framework", "memory"]
    assert model["properties"]["memory"] == {
        "x-kubernetes-int-or-string": True, "description": model["properties"]["memory"][
            "description"]}
