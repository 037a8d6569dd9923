"""v1alpha2 <-> v1beta1 conversion, the v1alpha2 defaulter and validator, the review."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.conversion import (
    STASH_ANNOTATION,
    ConversionError,
    convert,
    to_v1alpha2,
    to_v1beta1,
)
from kfserving_operator.api.v1alpha2_admission import (
    CANARY_NOT_SUPPORTED,
    default_v1alpha2,
    validate_v1alpha2,
)
from kfserving_operator.webhooks.legacy import review_conversion

ALPHA = "serving.kubeflow.org/v1alpha2"
BETA = "serving.kubeflow.org/v1beta1"
RESOURCES = {"limits": {"cpu": "2", "memory": "4Gi"}, "requests": {"cpu": "1", "memory": "2Gi"}}
META = {"name": "m", "namespace": "ns", "uid": "u-1", "resourceVersion": "7", "generation": 2,
        "labels": {"team": "a"}, "annotations": {"owner": "me"}}


def alpha(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": ALPHA, "kind": "InferenceService", "metadata": copy.deepcopy(META),
            "spec": spec}


def beta(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": BETA, "kind": "InferenceService", "metadata": copy.deepcopy(META),
            "spec": spec}


ALPHA_PREDICTORS: dict[str, dict[str, Any]] = {
    "sklearn": {"sklearn": {"storageUri": "gs://b/sk", "runtimeVersion": "v0.6.1",
                            "resources": RESOURCES}},
    "xgboost": {"xgboost": {"storageUri": "gs://b/xg", "nthread": 4}},
    "lightgbm": {"lightgbm": {"storageUri": "gs://b/lgb", "nthread": 2, "resources": RESOURCES}},
    "tensorflow": {"tensorflow": {"storageUri": "gs://b/tf", "runtimeVersion": "1.14.0"}},
    "pytorch": {"pytorch": {"storageUri": "gs://b/pt", "modelClassName": "Net"}},
    "onnx": {"onnx": {"storageUri": "gs://b/model.onnx"}},
    "triton": {"triton": {"storageUri": "gs://b/triton", "runtimeVersion": "20.08-py3"}},
    "pmml": {"pmml": {"storageUri": "gs://b/pmml"}},
    "custom": {"custom": {"container": {"name": "kfserving-container", "image": "me/server:1",
                                        "env": [{"name": "STORAGE_URI", "value": "s3://b/m"}],
                                        "args": ["--port=8080"]}}},
}
DEPLOYMENT = {"serviceAccountName": "sa", "minReplicas": 0, "maxReplicas": 3, "parallelism": 5,
              "logger": {"url": "http://sink", "mode": "request"},
              "batcher": {"maxBatchSize": 32, "maxLatency": 50, "timeout": 60}}


@pytest.mark.parametrize("framework", sorted(ALPHA_PREDICTORS))
def test_every_v1alpha2_predictor_round_trips(framework: str) -> None:
    obj = alpha({"default": {"predictor": {**ALPHA_PREDICTORS[framework], **DEPLOYMENT}}})
    stored = to_v1beta1(obj)
    assert stored["apiVersion"] == BETA
    assert stored["metadata"] == META
    assert STASH_ANNOTATION not in (stored["metadata"].get("annotations") or {})
    assert to_v1alpha2(stored) == obj


def test_v1alpha2_fields_land_where_v1beta1_has_them() -> None:
    obj = alpha({"default": {
        "predictor": {"xgboost": {"storageUri": "gs://b/xg", "nthread": 4}, **DEPLOYMENT},
        "transformer": {"custom": {"container": {"image": "t:1"}}, "parallelism": 2,
                        "serviceAccountName": "tsa", "logger": {"mode": "all"}},
        "explainer": {"alibi": {"type": "AnchorTabular", "storageUri": "gs://b/ex",
                                "config": {"threshold": "0.9"}}, "parallelism": 0},
    }, "canaryTrafficPercent": 10})
    spec = to_v1beta1(obj)["spec"]
    predictor = spec["predictor"]
    assert predictor["xgboost"] == {"storageUri": "gs://b/xg", "args": ["--nthread=4"]}
    assert predictor["containerConcurrency"] == 5
    assert predictor["serviceAccountName"] == "sa"
    assert predictor["canaryTrafficPercent"] == 10
    assert predictor["logger"] == {"url": "http://sink", "mode": "request"}
    assert predictor["batcher"] == {"maxBatchSize": 32, "maxLatency": 50, "timeout": 60}
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (0, 3)
    transformer = spec["transformer"]
    assert transformer == {"containers": [{"image": "t:1"}], "containerConcurrency": 2,
                           "serviceAccountName": "tsa", "logger": {"mode": "all"}}
    explainer = spec["explainer"]
    assert explainer["alibi"]["config"] == {"threshold": "0.9"}
    assert explainer["containerConcurrency"] == 0  # an explicit 0 stays


@pytest.mark.parametrize("explainer", [
    {"alibi": {"type": "AnchorImages", "storageUri": "gs://b/e", "runtimeVersion": "v0.6.1"}},
    {"aix": {"type": "LimeImages", "resources": RESOURCES}},
    {"custom": {"container": {"image": "ex:1", "name": "kfserving-container"}}},
])
def test_v1alpha2_explainers_and_transformer_round_trip(explainer: dict[str, Any]) -> None:
    obj = alpha({"default": {
        "predictor": ALPHA_PREDICTORS["sklearn"],
        "transformer": {"custom": {"container": {"image": "tr:1"}}, **DEPLOYMENT},
        "explainer": {**explainer, **DEPLOYMENT},
    }})
    assert to_v1alpha2(to_v1beta1(obj)) == obj


BETA_PREDICTORS: dict[str, dict[str, Any]] = {
    name: {name: {"storageUri": f"gs://b/{name}", "runtimeVersion": "1", "resources": RESOURCES,
                  "protocolVersion": "v1", "env": [{"name": "A", "value": "1"}],
                  "args": ["--x=1"], "name": "kfserving-container"}}
    for name in ("sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "pmml",
                 "lightgbm", "paddle")
}
BETA_PREDICTORS["xgboost-nthread"] = {"xgboost": {"storageUri": "gs://b/x",
                                                  "args": ["--a", "--nthread=3", "--b"]}}
BETA_PREDICTORS["custom"] = {"containers": [
    {"name": "kfserving-container", "image": "me/s:1", "ports": [{"containerPort": 9000}]},
    {"name": "sidecar", "image": "side:1"}], "nodeSelector": {"gpu": "a100"}}
BETA_COMPONENT = {"minReplicas": 1, "maxReplicas": 4, "containerConcurrency": 8,
                  "serviceAccountName": "sa", "timeout": 90, "scaleTarget": 3,
                  "scaleMetric": "rps", "logger": {"mode": "all"},
                  "batcher": {"maxBatchSize": 4}}


@pytest.mark.parametrize("framework", sorted(BETA_PREDICTORS))
def test_every_v1beta1_predictor_round_trips_through_v1alpha2(framework: str) -> None:
    obj = beta({"predictor": {**BETA_PREDICTORS[framework], **BETA_COMPONENT,
                              "canaryTrafficPercent": 25}})
    viewed = to_v1alpha2(obj)
    assert viewed["apiVersion"] == ALPHA
    assert viewed["spec"]["default"]["predictor"]["parallelism"] == 8
    assert viewed["spec"]["default"]["predictor"]["serviceAccountName"] == "sa"
    assert viewed["spec"]["canaryTrafficPercent"] == 25
    assert to_v1beta1(viewed) == obj


@pytest.mark.parametrize("explainer", [
    {"alibi": {"type": "AnchorText", "config": {"a": "b"}, "env": [{"name": "E", "value": "1"}]}},
    {"aix": {"type": "LimeImages"}},
    {"art": {"type": "SquareAttack", "storageUri": "gs://b/art"}},
    {"containers": [{"image": "ex:1"}]},
])
def test_v1beta1_explainers_and_transformers_round_trip(explainer: dict[str, Any]) -> None:
    obj = beta({
        "predictor": BETA_PREDICTORS["sklearn"],
        "transformer": {"containers": [{"image": "tr:1", "env": [{"name": "X", "value": "y"}]}],
                        **BETA_COMPONENT, "canaryTrafficPercent": 50},
        "explainer": {**explainer, **BETA_COMPONENT},
    })
    assert to_v1beta1(to_v1alpha2(obj)) == obj


def test_fields_v1alpha2_can_express_come_from_the_v1alpha2_object() -> None:
    stored = beta({"predictor": {"sklearn": {"storageUri": "gs://b/a", "env": [
        {"name": "A", "value": "1"}]}, "containerConcurrency": 2, "timeout": 30}})
    viewed = to_v1alpha2(stored)
    edited = copy.deepcopy(viewed)
    predictor = edited["spec"]["default"]["predictor"]
    predictor["sklearn"]["storageUri"] = "gs://b/b"
    predictor["parallelism"] = 6
    result = to_v1beta1(edited)["spec"]["predictor"]
    assert result["sklearn"] == {"storageUri": "gs://b/b", "env": [{"name": "A", "value": "1"}]}
    assert (result["containerConcurrency"], result["timeout"]) == (6, 30)
    # Switching the framework through v1alpha2 drops the old framework's hidden fields.
    predictor = copy.deepcopy(viewed["spec"]["default"]["predictor"])
    predictor["xgboost"] = predictor.pop("sklearn")
    switched = copy.deepcopy(viewed)
    switched["spec"]["default"]["predictor"] = predictor
    assert "sklearn" not in to_v1beta1(switched)["spec"]["predictor"]
    # Removing a component through v1alpha2 removes it.
    with_transformer = beta({"predictor": {"sklearn": {"storageUri": "gs://b"}},
                             "transformer": {"containers": [{"image": "t", "env": []}]}})
    view = to_v1alpha2(with_transformer)
    del view["spec"]["default"]["transformer"]
    assert "transformer" not in to_v1beta1(view)["spec"]


def test_status_in_v1alpha2_shape() -> None:
    obj = beta({"predictor": {"sklearn": {"storageUri": "gs://b"}}})
    obj["status"] = {
        "url": "http://m.ns.example.com", "address": {"url": "http://m.ns.svc.cluster.local"},
        "conditions": [{"type": "Ready", "status": "True"}], "observedGeneration": 2,
        "components": {"predictor": {
            "latestCreatedRevision": "m-predictor-default-00002",
            "url": "http://m-predictor-default.ns.example.com",
            "traffic": [{"latestRevision": True, "percent": 20, "revisionName": "r2"},
                        {"latestRevision": False, "percent": 80, "revisionName": "r1",
                         "tag": "prev"}]}},
    }
    status = to_v1alpha2(obj)["status"]
    assert status["default"] == {"predictor": {"name": "m-predictor-default-00002",
                                               "host": "m-predictor-default.ns.example.com"}}
    assert (status["traffic"], status["canaryTraffic"]) == (80, 20)
    assert status["url"] == "http://m.ns.example.com"
    obj["status"]["components"]["predictor"]["traffic"] = [{"latestRevision": True,
                                                            "percent": 100}]
    assert to_v1alpha2(obj)["status"]["traffic"] == 100
    assert "canaryTraffic" not in to_v1alpha2(obj)["status"]


def test_conversion_review_converts_every_object_and_reports_failures() -> None:
    objects = [beta({"predictor": {"sklearn": {"storageUri": "gs://b"}}}),
               alpha({"default": {"predictor": ALPHA_PREDICTORS["pmml"]}})]
    review = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
              "request": {"uid": "abc", "desiredAPIVersion": ALPHA, "objects": objects}}
    response = review_conversion(review)["response"]
    assert response["uid"] == "abc"
    assert response["result"] == {"status": "Success"}
    assert [o["apiVersion"] for o in response["convertedObjects"]] == [ALPHA, ALPHA]
    review["request"]["desiredAPIVersion"] = "serving.kubeflow.org/v9"
    failed = review_conversion(review)["response"]
    assert failed["result"]["status"] == "Failure"
    assert "v9" in failed["result"]["message"]
    with pytest.raises(ConversionError):
        convert({"apiVersion": "other/v1"}, BETA)


# ---- v1alpha2 admission

CONFIG = OperatorConfig()


def test_v1alpha2_canary_is_refused_with_kfservings_message() -> None:
    obj = alpha({"default": {"predictor": ALPHA_PREDICTORS["sklearn"]},
                 "canary": {"predictor": ALPHA_PREDICTORS["sklearn"]},
                 "canaryTrafficPercent": 10})
    errors = validate_v1alpha2(obj, CONFIG)
    assert [(e.path, e.message) for e in errors] == [
        ("spec.canary", CANARY_NOT_SUPPORTED),
        ("spec.canaryTrafficPercent", CANARY_NOT_SUPPORTED),
    ]
    assert CANARY_NOT_SUPPORTED == ("Canary rollout is no longer supported on v1alpha2, please "
                                    "convert to v1beta1 to use the feature.")


def test_v1alpha2_update_keeping_a_v1beta1_canary_percent_is_allowed() -> None:
    old = alpha({"default": {"predictor": ALPHA_PREDICTORS["sklearn"]},
                 "canaryTrafficPercent": 30})
    new = copy.deepcopy(old)
    new["spec"]["default"]["predictor"]["minReplicas"] = 2
    assert validate_v1alpha2(new, CONFIG, old) == []
    new["spec"]["canaryTrafficPercent"] = 40
    assert [e.path for e in validate_v1alpha2(new, CONFIG, old)] == ["spec.canaryTrafficPercent"]


def test_v1alpha2_validation_reports_v1alpha2_paths() -> None:
    obj = alpha({"default": {"predictor": {
        "sklearn": {"storageUri": "ftp://nope"}, "parallelism": -1, "minReplicas": 5,
        "maxReplicas": 2}}})
    paths = [e.path for e in validate_v1alpha2(obj, CONFIG)]
    assert "spec.default.predictor.sklearn.storageUri" in paths
    assert "spec.default.predictor.parallelism" in paths
    assert "spec.default.predictor.minReplicas" in paths
    two = alpha({"default": {"predictor": {**ALPHA_PREDICTORS["sklearn"],
                                           **ALPHA_PREDICTORS["pmml"]}}})
    [error] = validate_v1alpha2(two, CONFIG)
    assert error.path == "spec.default.predictor"
    assert error.message.startswith("Exactly one of [Custom, ONNX, Tensorflow")
    unknown = alpha({"default": {"predictor": {"sklearn": {"storageURI": "gs://x"}}}})
    assert [e.path for e in validate_v1alpha2(unknown, CONFIG)] == [
        "spec.default.predictor.sklearn.storageURI"]


def test_v1alpha2_defaulter_fills_what_kfserving_did() -> None:
    obj = alpha({"default": {
        "predictor": {"pytorch": {"storageUri": "gs://b/pt"}},
        "explainer": {"alibi": {"type": "AnchorTabular"}},
    }})
    defaulted = default_v1alpha2(obj, CONFIG)
    predictor = defaulted["spec"]["default"]["predictor"]["pytorch"]
    assert predictor["modelClassName"] == "PyTorchModel"
    assert predictor["runtimeVersion"] == CONFIG.predictors.pytorch.v1.default_image_version
    assert predictor["resources"] == {"limits": {"cpu": "1", "memory": "2Gi"},
                                      "requests": {"cpu": "1", "memory": "2Gi"}}
    assert defaulted["spec"]["default"]["explainer"]["alibi"]["runtimeVersion"]
    assert defaulted["metadata"] == obj["metadata"]
    assert default_v1alpha2(defaulted, CONFIG) == defaulted
    assert validate_v1alpha2(defaulted, CONFIG) == []


def test_stash_is_compact_json() -> None:
    obj = beta({"predictor": {"sklearn": {"storageUri": "gs://b", "env": []}}})
    stash = to_v1alpha2(obj)["metadata"]["annotations"][STASH_ANNOTATION]
    assert json.loads(stash) == {"predictor": {"sklearn": {"env": []}}}


def test_status_round_trips_both_ways() -> None:
    """Server-side apply converts objects through every manager's version: nothing may be lost."""
    obj = beta({"predictor": {"sklearn": {"storageUri": "gs://b"}}})
    obj["status"] = {
        "url": "http://m.ns.example.com", "address": {"url": "http://m.ns.svc.cluster.local"},
        "conditions": [{"type": "Ready", "status": "True",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "observedGeneration": 3, "annotations": {"a": "b"},
        "components": {"predictor": {
            "latestCreatedRevision": "r2", "latestReadyRevision": "r2",
            "latestRolledoutRevision": "r1", "previousRolledoutRevision": "r0",
            "url": "http://m-predictor-default.ns.example.com",
            "address": {"url": "http://m-predictor-default.ns.svc.cluster.local"},
            "traffic": [{"latestRevision": True, "percent": 100, "revisionName": "r2"}]}},
    }
    assert to_v1beta1(to_v1alpha2(obj)) == obj
    view = to_v1alpha2(obj)
    assert to_v1alpha2(to_v1beta1(view)) == view


def test_a_v1alpha2_canary_survives_the_round_trip_to_reach_the_validator() -> None:
    obj = alpha({"default": {"predictor": ALPHA_PREDICTORS["sklearn"]},
                 "canary": {"predictor": ALPHA_PREDICTORS["pmml"]}})
    converted = to_v1beta1(obj)
    assert "canary" not in converted["spec"]
    assert to_v1alpha2(converted) == obj
