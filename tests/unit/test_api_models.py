"""The InferenceService models: wire names, round trips, one-of helpers, documentation."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from kfserving_operator.api import (
    CUSTOM,
    EXPLAINER_FRAMEWORKS,
    FRAMEWORKS,
    ExplainerSpec,
    InferenceService,
    InferenceServiceStatus,
    PredictorSpec,
    TorchServeSpec,
    TransformerSpec,
)
from kfserving_operator.api.inference_service import ObjectMeta

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

FULL_STATUS: dict[str, Any] = {
    "observedGeneration": 3,
    "url": "http://sklearn-iris.default.example.com",
    "address": {
        "url": "http://sklearn-iris.default.svc.cluster.local/v1/models/sklearn-iris:predict"
    },
    "annotations": {"a": "b"},
    "components": {
        "predictor": {
            "latestReadyRevision": "sklearn-iris-predictor-default-00002",
            "latestCreatedRevision": "sklearn-iris-predictor-default-00002",
            "previousRolledoutRevision": "sklearn-iris-predictor-default-00001",
            "latestRolledoutRevision": "sklearn-iris-predictor-default-00001",
            "traffic": [
                {
                    "tag": "latest",
                    "latestRevision": True,
                    "percent": 20,
                    "revisionName": "sklearn-iris-predictor-default-00002",
                    "url": "http://latest-sklearn-iris-predictor-default.default.example.com",
                },
                {
                    "tag": "prev",
                    "latestRevision": False,
                    "percent": 80,
                    "revisionName": "sklearn-iris-predictor-default-00001",
                    "configurationName": "sklearn-iris-predictor-default",
                },
            ],
            "url": "http://sklearn-iris-predictor-default.default.example.com",
            "address": {"url": "http://sklearn-iris-predictor-default.default.svc.cluster.local"},
        }
    },
    "conditions": [
        {"type": "IngressReady", "status": "True", "lastTransitionTime": "2021-01-01T00:00:00Z"},
        {"type": "PredictorRouteReady", "status": "True", "severity": "Info"},
        {"type": "Ready", "status": "False", "reason": "Boom", "message": "it broke"},
    ],
}


def _isvc(predictor: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kubeflow.org/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "m", "namespace": "ns"},
        "spec": {"predictor": predictor, **spec},
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_round_trip(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    assert InferenceService.model_validate(data).to_wire() == data


def test_full_object_round_trip_with_status_and_server_metadata() -> None:
    data = _isvc({"sklearn": {"storageUri": "gs://b/m", "runtimeVersion": "v1"}})
    data["metadata"].update(
        {
            "uid": "1234",
            "generation": 2,
            "resourceVersion": "99",
            "creationTimestamp": "2021-01-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl", "operation": "Update"}],
            "finalizers": ["inferenceservice.finalizers"],
        }
    )
    data["status"] = FULL_STATUS
    isvc = InferenceService.model_validate(data)
    assert isvc.to_wire() == data
    assert isvc.metadata.generation == 2
    assert isvc.status is not None
    assert isvc.status.is_ready() is False
    ready = isvc.status.condition("Ready")
    assert ready is not None and ready.reason == "Boom"
    predictor = (isvc.status.components or {})["predictor"]
    assert predictor.traffic is not None and predictor.traffic[1].tag == "prev"
    assert predictor.traffic[0].latest_revision is True


def test_wire_names_are_upstream_camel_case() -> None:
    predictor = {
        "minReplicas": 0,
        "maxReplicas": 3,
        "containerConcurrency": 4,
        "timeout": 30,
        "canaryTrafficPercent": 10,
        "scaleTarget": 5,
        "scaleMetric": "rps",
        "logger": {"url": "http://sink", "mode": "request"},
        "batcher": {"maxBatchSize": 8, "maxLatency": 100, "timeout": 2},
        "serviceAccountName": "sa",
        "hostPID": False,
        "hostIPC": False,
        "setHostnameAsFQDN": False,
        "nodeSelector": {"gpu": "yes"},
        "tolerations": [{"key": "k", "operator": "Exists"}],
        "pytorch": {
            "storageUri": "gs://b/m",
            "runtimeVersion": "0.9.0",
            "protocolVersion": "v1",
            "modelClassName": "Net",
            "imagePullPolicy": "Always",
            "workingDir": "/w",
            "envFrom": [{"configMapRef": {"name": "c"}}],
            "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {}}}],
            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
            "volumeMounts": [{"name": "v", "mountPath": "/v"}],
        },
    }
    isvc = InferenceService.model_validate(_isvc(predictor))
    p = isvc.spec.predictor
    assert p.min_replicas == 0 and p.max_replicas == 3 and p.container_concurrency == 4
    assert p.canary_traffic_percent == 10 and p.scale_metric == "rps"
    assert p.logger is not None and p.logger.mode == "request"
    assert p.batcher is not None and p.batcher.max_batch_size == 8
    assert p.host_pid is False and p.set_hostname_as_fqdn is False
    assert isinstance(p.pytorch, TorchServeSpec)
    assert p.pytorch.model_class_name == "Net"
    assert p.pytorch.env_value("A") == "1"
    assert p.pytorch.env_value("B") is None
    assert isvc.to_wire()["spec"]["predictor"] == predictor


def test_python_names_populate_too() -> None:
    spec = PredictorSpec(min_replicas=2, sklearn={"storage_uri": "s3://b/m"})  # type: ignore[arg-type]
    assert spec.to_wire() == {"minReplicas": 2, "sklearn": {"storageUri": "s3://b/m"}}


@pytest.mark.parametrize(
    ("predictor", "loc"),
    [
        ({"sklearn": {"storageURI": "gs://b"}}, ("spec", "predictor", "sklearn", "storageURI")),
        ({"sklearn": {}, "minReplica": 1}, ("spec", "predictor", "minReplica")),
        ({"sklearn": {}, "logger": {"level": "x"}}, ("spec", "predictor", "logger", "level")),
    ],
)
def test_unknown_fields_are_rejected(predictor: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        InferenceService.model_validate(_isvc(predictor))
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [loc]
    assert errors[0]["type"] == "extra_forbidden"


def test_numeric_quantities_are_kept_as_text() -> None:
    isvc = InferenceService.model_validate(
        _isvc({"sklearn": {"resources": {"limits": {"cpu": 2, "memory": "1Gi"}}}})
    )
    assert isvc.to_wire()["spec"]["predictor"]["sklearn"]["resources"]["limits"] == {
        "cpu": "2",
        "memory": "1Gi",
    }


def test_gpu_detection_uses_limits_only() -> None:
    with_limit = TorchServeSpec.model_validate({"resources": {"limits": {"nvidia.com/gpu": "1"}}})
    with_request = TorchServeSpec.model_validate(
        {"resources": {"requests": {"nvidia.com/gpu": "1"}}}
    )
    assert with_limit.has_gpu() is True
    assert with_request.has_gpu() is False
    assert TorchServeSpec().has_gpu() is False


def test_frameworks_order() -> None:
    assert FRAMEWORKS == (
        "sklearn",
        "xgboost",
        "tensorflow",
        "pytorch",
        "triton",
        "onnx",
        "pmml",
        "lightgbm",
        "paddle",
    )
    assert EXPLAINER_FRAMEWORKS == ("alibi", "aix", "art")
    for name in FRAMEWORKS:
        assert name in PredictorSpec.model_fields
    for name in EXPLAINER_FRAMEWORKS:
        assert name in ExplainerSpec.model_fields


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_predictor_single_framework_implementation(framework: str) -> None:
    spec = PredictorSpec.model_validate({framework: {"storageUri": "gs://b/m"}})
    impl = spec.implementation()
    assert impl is not None
    assert impl.name == framework
    assert impl.spec is getattr(spec, framework)
    assert spec.framework() is impl.spec


def test_predictor_custom_and_ambiguous_implementations() -> None:
    custom = PredictorSpec.model_validate({"containers": [{"image": "a"}, {"image": "b"}]})
    impl = custom.implementation()
    assert impl is not None and impl.name == CUSTOM
    assert impl.spec.image == "a"
    assert custom.framework() is None

    both = PredictorSpec.model_validate({"sklearn": {}, "containers": [{"image": "a"}]})
    assert both.implementation() is None
    assert [i.name for i in both.implementations()] == ["sklearn", CUSTOM]

    none = PredictorSpec.model_validate({"containers": []})
    assert none.implementation() is None and none.implementations() == []


def test_explainer_and_transformer_implementations() -> None:
    explainer = ExplainerSpec.model_validate({"alibi": {"type": "AnchorTabular"}})
    impl = explainer.implementation()
    assert impl is not None and impl.name == "alibi"
    assert ExplainerSpec.model_validate({}).implementation() is None
    two = ExplainerSpec.model_validate(
        {"aix": {"type": "LimeImages"}, "art": {"type": "SquareAttack"}}
    )
    assert [i.name for i in two.implementations()] == ["aix", "art"]

    transformer = TransformerSpec.model_validate({"containers": [{"image": "t"}]})
    timpl = transformer.implementation()
    assert timpl is not None and timpl.name == CUSTOM and timpl.spec.image == "t"
    assert TransformerSpec().implementation() is None


def test_explainer_type_is_required() -> None:
    with pytest.raises(ValidationError) as info:
        ExplainerSpec.model_validate({"alibi": {}})
    assert info.value.errors()[0]["loc"] == ("alibi", "type")


def test_component_lookup() -> None:
    isvc = InferenceService.model_validate(
        _isvc({"sklearn": {}}, explainer={"alibi": {"type": "AnchorText"}})
    )
    assert isvc.component("predictor") is isvc.spec.predictor
    assert isvc.component("transformer") is None
    assert isvc.component("explainer") is isvc.spec.explainer
    assert [name for name, _ in isvc.components()] == ["predictor", "explainer"]
    with pytest.raises(ValueError, match="unknown component"):
        isvc.component("router")


def test_metadata_helpers_and_extra_keys() -> None:
    meta = ObjectMeta.model_validate({"name": "x", "selfLink": "/apis/x", "labels": {"a": "b"}})
    assert meta.to_wire() == {"name": "x", "selfLink": "/apis/x", "labels": {"a": "b"}}
    isvc = InferenceService.model_validate(
        {
            "metadata": {
                "name": "x",
                "annotations": {"serving.kubeflow.org/enable-tag-routing": "true"},
            },
            "spec": {"predictor": {"sklearn": {}}},
        }
    )
    assert isvc.name == "x" and isvc.namespace == ""
    assert isvc.tag_routing_enabled() is True
    assert isvc.api_version == "serving.kubeflow.org/v1beta1" and isvc.kind == "InferenceService"


def test_status_ignores_unknown_keys() -> None:
    status = InferenceServiceStatus.model_validate(
        {
            "url": "http://x",
            "modelStatus": {"states": {}},
            "conditions": [{"type": "Ready", "status": "True"}],
        }
    )
    assert status.is_ready() is True
    assert status.to_wire() == {
        "url": "http://x",
        "conditions": [{"type": "Ready", "status": "True"}],
    }


def test_condition_status_is_an_enum() -> None:
    with pytest.raises(ValidationError):
        InferenceServiceStatus.model_validate({"conditions": [{"type": "Ready", "status": "yes"}]})


def _models(root: type[BaseModel]) -> set[type[BaseModel]]:
    seen: set[type[BaseModel]] = set()
    todo = [root]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for field in model.model_fields.values():
            stack = [field.annotation]
            while stack:
                tp = stack.pop()
                if isinstance(tp, type) and issubclass(tp, BaseModel):
                    todo.append(tp)
                origin = typing.get_origin(tp)
                if origin is not None or isinstance(tp, types.UnionType):
                    stack.extend(typing.get_args(tp))
    return seen


def test_every_field_is_documented() -> None:
    models = _models(InferenceService)
    assert PredictorSpec in models and TorchServeSpec in models
    missing = [
        f"{model.__name__}.{name}"
        for model in models
        for name, field in model.model_fields.items()
        if not field.description
    ]
    assert missing == []
