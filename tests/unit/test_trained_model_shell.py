"""The TrainedModel cache and the TrainedModel and v1alpha2 admission reviews."""

from __future__ import annotations

import base64
import json
from typing import Any

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.operator.cache import TrainedModelCache
from kfserving_operator.operator.trainedmodels import _serves_one_model
from kfserving_operator.reconcile.trainedmodel import read_parent
from kfserving_operator.webhooks.legacy import (
    needs_trained_model_checks,
    review_trained_model_validation,
    review_v1alpha2_defaulting,
    review_v1alpha2_validation,
)

CONFIG = OperatorConfig()


def tm(name: str, parent: str, version: str = "1") -> dict[str, Any]:
    return {"apiVersion": "serving.kubeflow.org/v1alpha1", "kind": "TrainedModel",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": version},
            "spec": {"inferenceService": parent,
                     "model": {"storageUri": "gs://m/a", "framework": "sklearn",
                               "memory": "1Gi"}}}


def test_cache_groups_by_parent_and_follows_moves() -> None:
    cache = TrainedModelCache()
    assert cache.put(tm("a", "p1")) is None
    cache.put(tm("b", "p1"))
    assert cache.is_current(tm("a", "p1"))
    assert sorted(m["metadata"]["name"] for m in cache.models(("ns", "p1"))) == ["a", "b"]
    assert cache.put(tm("a", "p2", "2")) == ("ns", "p1")  # moved: the old parent is returned
    assert [m["metadata"]["name"] for m in cache.models(("ns", "p1"))] == ["b"]
    assert cache.has_models(("ns", "p2"))
    cache.set_status(("ns", "a"), {"conditions": []})
    assert cache.get(("ns", "a"))["status"] == {"conditions": []}  # type: ignore[index]
    assert not cache.is_current(tm("a", "p2", "2"))  # our write: let the next event in
    assert cache.drop(("ns", "a")) == ("ns", "p2")
    assert not cache.has_models(("ns", "p2"))
    assert cache.drop(("ns", "missing")) is None
    assert cache.parents() == [("ns", "p1")]


def review(operation: str, obj: dict[str, Any], old: dict[str, Any] | None = None,
           ) -> dict[str, Any]:
    request: dict[str, Any] = {"uid": "u", "operation": operation, "object": obj,
                               "namespace": "ns"}
    if old is not None:
        request["oldObject"] = old
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def test_trained_model_review() -> None:
    parent = read_parent("p1", "ns", {
        "apiVersion": "serving.kubeflow.org/v1beta1", "kind": "InferenceService",
        "metadata": {"name": "p1", "namespace": "ns"},
        "spec": {"predictor": {"sklearn": {}}}}, CONFIG)
    allowed = review_trained_model_validation(review("CREATE", tm("a", "p1")), parent, CONFIG,
                                              None)
    assert allowed["response"]["allowed"] is True
    missing = review_trained_model_validation(review("CREATE", tm("a", "p9")),
                                              read_parent("p9", "ns", None, CONFIG), CONFIG,
                                              None)
    assert missing["response"]["allowed"] is False
    assert missing["response"]["status"]["message"] == (
        "TrainedModel 'a' is invalid: spec.inferenceService: InferenceService 'p9' does not "
        "exist in namespace 'ns'")
    # Owner references and labels the operator sets: let through without reading anything.
    relabelled = {**tm("a", "p9"), "metadata": {**tm("a", "p9")["metadata"],
                                                "labels": {"inferenceservice": "p9"}}}
    assert not needs_trained_model_checks(review("UPDATE", relabelled, tm("a", "p9")))
    assert needs_trained_model_checks(review("UPDATE", tm("a", "p1"), tm("a", "p9")))
    assert not needs_trained_model_checks(review("DELETE", tm("a", "p1")))


def test_v1alpha2_reviews() -> None:
    obj = {"apiVersion": "serving.kubeflow.org/v1alpha2", "kind": "InferenceService",
           "metadata": {"name": "old", "namespace": "ns"},
           "spec": {"default": {"predictor": {"pytorch": {"storageUri": "gs://m/p"}}}}}
    answer = review_v1alpha2_defaulting(review("CREATE", obj), CONFIG)["response"]
    patch = json.loads(base64.b64decode(answer["patch"]))
    assert {"op": "add", "path": "/spec/default/predictor/pytorch/modelClassName",
            "value": "PyTorchModel"} in patch
    refused = review_v1alpha2_validation(review("CREATE", {**obj, "spec": {
        **obj["spec"], "canary": obj["spec"]["default"]}}), CONFIG)["response"]
    assert refused["allowed"] is False
    assert "spec.canary: Canary rollout is no longer supported" in refused["status"]["message"]
    assert review_v1alpha2_validation(review("DELETE", obj), CONFIG)["response"]["allowed"]


def test_the_cheap_single_model_check_agrees_with_the_parsed_parent() -> None:
    """Every InferenceService event reaches the TrainedModel controller; the raw-spec check
    that skips single-model ones must never skip one that can take TrainedModels."""
    def isvc(predictor: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "serving.kubeflow.org/v1beta1", "kind": "InferenceService",
                "metadata": {"name": "p", "namespace": "ns"}, "spec": {"predictor": predictor}}

    cases = [
        {"sklearn": {"storageUri": "gs://m/a"}},
        {"sklearn": {}},
        {"triton": {}},
        {"triton": {"storageUri": ""}},
        {"containers": [{"name": "kfserving-container", "image": "x",
                         "env": [{"name": "MULTI_MODEL_SERVER", "value": "true"}]}]},
        {"minReplicas": 1, "xgboost": {"storageUri": "s3://b/m"}},
    ]
    for predictor in cases:
        obj = isvc(predictor)
        parent = read_parent("p", "ns", obj, CONFIG)
        takes_models = parent.isvc is not None and parent.not_multi_model_reason(CONFIG) is None
        assert not (takes_models and _serves_one_model(obj)), predictor
    assert _serves_one_model(isvc(cases[0])) and not _serves_one_model(isvc(cases[1]))
