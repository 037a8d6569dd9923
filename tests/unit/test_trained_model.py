"""TrainedModels: models.json, parent checks at admission, status, which models fit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.reconcile.modelconfig import (
    MODELS_KEY,
    ModelEntry,
    entry_size,
    model_names,
    parse_models,
    render_models,
)
from kfserving_operator.reconcile.trainedmodel import (
    Parent,
    admission_errors,
    plan_trained_models,
    read_parent,
)

CONFIG = OperatorConfig()
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def isvc(name: str = "mms", memory: str | None = "2Gi", ready: bool = True,
         **predictor: Any) -> dict[str, Any]:
    spec = predictor or {"sklearn": {"resources": {"limits": {"memory": memory}}}
                         if memory else {}}
    return {
        "apiVersion": "serving.kubeflow.org/v1beta1", "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "ns", "uid": "isvc-uid", "labels": {"t": "1"}},
        "spec": {"predictor": spec},
        "status": {"url": f"http://{name}.ns.example.com",
                   "address": {"url": f"http://{name}.ns.svc.cluster.local"},
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                   "reason": "" if ready else "PredictorNotReady",
                                   "message": "" if ready else "predictor starting"}]},
    }


def tm(name: str, memory: str = "512Mi", framework: str = "sklearn",
       uri: str | None = None, created: str = "2026-01-01T00:00:00Z",
       **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kubeflow.org/v1alpha1", "kind": "TrainedModel",
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created,
                     "generation": 1, **meta},
        "spec": {"inferenceService": "mms",
                 "model": {"storageUri": uri or f"gs://models/{name}", "framework": framework,
                           "memory": memory}},
    }


def parent(raw: dict[str, Any] | None = None) -> Parent:
    return read_parent("mms", "ns", raw, CONFIG)


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {c["type"]: (c["status"], c.get("reason")) for c in status["conditions"]}


def test_models_json_is_kfservings_format_sorted_and_compact() -> None:
    text = render_models([ModelEntry("b", "s3://x/b", "sklearn", "1Gi"),
                          ModelEntry("a", "gs://x/a", "sklearn", "256Mi")])
    assert text == (
        '[{"modelName":"a","modelSpec":{"storageUri":"gs://x/a","framework":"sklearn",'
        '"memory":"256Mi"}},{"modelName":"b","modelSpec":{"storageUri":"s3://x/b",'
        '"framework":"sklearn","memory":"1Gi"}}]')
    assert parse_models(text)[0]["modelSpec"]["memory"] == "256Mi"
    assert model_names(text) == {"a", "b"}
    assert model_names("not json") == set()
    assert render_models([]) == "[]"


def test_models_are_written_with_status_url_and_owner() -> None:
    plan = plan_trained_models(parent(isvc()), [tm("m1"), tm("m2", framework="sklearn")],
                               CONFIG, NOW)
    assert plan.config_map is not None
    assert plan.config_map["metadata"]["name"] == "modelconfig-mms-0"
    assert plan.config_map["metadata"]["ownerReferences"][0]["uid"] == "isvc-uid"
    assert plan.config_map["metadata"]["labels"] == {"t": "1"}
    assert model_names(plan.config_map["data"][MODELS_KEY]) == {"m1", "m2"}
    status = plan.statuses["m1"]
    assert conditions(status)["Ready"] == ("True", None)
    assert set(conditions(status)) == {"Ready", "InferenceServiceReady", "FrameworkSupported",
                                       "MemoryResourceAvailable", "IsMMSPredictor",
                                       "ModelConfigured"}
    assert status["url"] == "http://mms.ns.example.com/v1/models/m1:predict"
    assert status["address"] == {"url": "http://mms.ns.svc.cluster.local/v1/models/m1:predict"}
    assert status["observedGeneration"] == 1
    assert plan.metadata["m1"] == {
        "labels": {"inferenceservice": "mms"},
        "ownerReferences": [{"apiVersion": "serving.kubeflow.org/v1beta1",
                             "kind": "InferenceService", "name": "mms", "uid": "isvc-uid",
                             "blockOwnerDeletion": True}]}


def test_same_inputs_same_plan_and_owned_models_need_no_metadata() -> None:
    owned = tm("m1", labels={"inferenceservice": "mms"}, ownerReferences=[
        {"apiVersion": "serving.kubeflow.org/v1beta1", "kind": "InferenceService",
         "name": "mms", "uid": "isvc-uid"}])
    first = plan_trained_models(parent(isvc()), [owned], CONFIG, NOW)
    assert first.metadata == {}
    again = plan_trained_models(parent(isvc()), [{**owned, "status": first.statuses["m1"]}],
                                CONFIG, datetime(2027, 1, 1, tzinfo=UTC))
    assert again.statuses == first.statuses  # transition times kept
    assert again.config_map == first.config_map


def test_parent_missing_not_ready_and_not_multi_model_are_reported() -> None:
    missing = plan_trained_models(parent(None), [tm("m1")], CONFIG, NOW)
    assert missing.config_map is None
    found = conditions(missing.statuses["m1"])
    assert found["Ready"] == ("False", "InferenceServiceNotFound")
    assert found["ModelConfigured"] == ("False", "InferenceServiceNotFound")
    assert missing.metadata == {}

    not_ready = plan_trained_models(parent(isvc(ready=False)), [tm("m1")], CONFIG, NOW)
    found = conditions(not_ready.statuses["m1"])
    assert found["InferenceServiceReady"] == ("False", "InferenceServiceNotReady")
    assert found["ModelConfigured"] == ("True", None)  # written while the server starts
    assert "predictor starting" in json.dumps(not_ready.statuses["m1"])

    single = isvc(sklearn={"storageUri": "gs://one/model"})
    plan = plan_trained_models(parent(single), [tm("m1")], CONFIG, NOW)
    assert plan.config_map is None
    found = conditions(plan.statuses["m1"])
    assert found["IsMMSPredictor"] == ("False", "IsNotMMSPredictor")
    assert found["Ready"][0] == "False"


def test_framework_mismatch_is_not_written() -> None:
    plan = plan_trained_models(parent(isvc()), [tm("m1", framework="xgboost")], CONFIG, NOW)
    assert plan.config_map is not None
    assert plan.config_map["data"][MODELS_KEY] == "[]"
    assert conditions(plan.statuses["m1"])["FrameworkSupported"] == (
        "False", "FrameworkNotSupported")


def test_memory_is_reserved_oldest_first() -> None:
    models = [tm("late", "1Gi", created="2026-01-03T00:00:00Z"),
              tm("first", "1536Mi", created="2026-01-01T00:00:00Z"),
              tm("small", "512Mi", created="2026-01-02T00:00:00Z")]
    plan = plan_trained_models(parent(isvc(memory="2Gi")), models, CONFIG, NOW)
    assert plan.config_map is not None
    assert model_names(plan.config_map["data"][MODELS_KEY]) == {"first", "small"}
    found = conditions(plan.statuses["late"])
    assert found["MemoryResourceAvailable"] == ("False", "MemoryResourceNotAvailable")
    assert found["ModelConfigured"] == ("False", "MemoryResourceNotAvailable")
    message = next(c["message"] for c in plan.statuses["late"]["conditions"]
                   if c["type"] == "MemoryResourceAvailable")
    assert "2Gi" in message and "needs 1Gi" in message


def test_a_full_configmap_is_reported() -> None:
    one = ModelEntry("a", "gs://models/a", "sklearn", "1Mi")
    capacity = len(MODELS_KEY) + 2 + entry_size(one) + 10
    plan = plan_trained_models(parent(isvc()), [tm("a", "1Mi"), tm("b", "1Mi")], CONFIG, NOW,
                               capacity=capacity)
    assert plan.config_map is not None
    assert model_names(plan.config_map["data"][MODELS_KEY]) == {"a"}
    found = conditions(plan.statuses["b"])
    assert found["ModelConfigured"] == ("False", "ModelConfigFull")
    assert found["Ready"] == ("False", "ModelConfigFull")


def test_models_of_a_deleted_parent_are_left_to_garbage_collection() -> None:
    gone = tm("m1", ownerReferences=[{"kind": "InferenceService", "name": "mms",
                                      "uid": "old-uid"}])
    plan = plan_trained_models(parent(isvc()), [gone], CONFIG, NOW)
    assert plan.statuses == {} and plan.metadata == {}
    deleting = isvc()
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert plan_trained_models(parent(deleting), [tm("m1")], CONFIG, NOW).statuses == {}


def test_v2_parent_gives_v2_urls() -> None:
    triton = isvc(triton={"resources": {"limits": {"memory": "4Gi"}}})
    plan = plan_trained_models(parent(triton), [tm("m1", framework="onnx")], CONFIG, NOW)
    assert plan.statuses["m1"]["url"] == "http://mms.ns.example.com/v2/models/m1/infer"


def test_admission_names_the_field_at_fault() -> None:
    def paths(raw: dict[str, Any], parent_raw: dict[str, Any] | None, *,
              model_config: str | None = None, old: dict[str, Any] | None = None) -> list[str]:
        return [e.path for e in admission_errors(raw, parent(parent_raw), CONFIG,
                                                 model_config=model_config, old=old)]

    assert paths(tm("m1"), isvc()) == []
    assert paths(tm("m1"), None) == ["spec.inferenceService"]
    single = isvc(sklearn={"storageUri": "gs://one"})
    [error] = admission_errors(tm("m1"), parent(single), CONFIG, model_config=None, old=None)
    assert error.path == "spec.inferenceService" and "storageUri" in error.message
    [error] = admission_errors(tm("m1", framework="tensorflow"), parent(isvc()), CONFIG,
                               model_config=None, old=None)
    assert error.path == "spec.model.framework"
    assert "[sklearn]" in error.message and "'tensorflow'" in error.message
    assert paths(tm("m1", memory="lots"), isvc()) == ["spec.model.memory"]
    assert paths(tm("m1", memory="0"), isvc()) == ["spec.model.memory"]
    assert paths(tm("m1", uri="pvc://claim/m"), isvc()) == ["spec.model.storageUri"]
    assert paths(tm("m.1"), isvc()) == ["metadata.name"]
    existing = render_models([ModelEntry("m1", "gs://x", "sklearn", "1Gi")])
    assert paths(tm("m1"), isvc(), model_config=existing) == ["metadata.name"]
    assert paths(tm("m1"), isvc(), model_config=existing, old=tm("m1")) == []
    assert paths(tm("m1", memory="1Gi"), isvc(), old=tm("m1", memory="1024Mi")) == []
    assert paths(tm("m1", memory="2Gi"), isvc(), old=tm("m1", memory="1Gi")) == [
        "spec.model.memory"]
    broken = tm("m1")
    del broken["spec"]["model"]["framework"]
    assert paths(broken, isvc()) == ["spec.model.framework"]


def test_custom_multi_model_predictor_takes_any_framework() -> None:
    custom = isvc(containers=[{"image": "me/mms:1", "env": [
        {"name": "MULTI_MODEL_SERVER", "value": "true"}],
        "resources": {"limits": {"memory": "4Gi"}}}])
    plan = plan_trained_models(parent(custom), [tm("m1", framework="anything")], CONFIG, NOW)
    assert conditions(plan.statuses["m1"])["Ready"] == ("True", None)
