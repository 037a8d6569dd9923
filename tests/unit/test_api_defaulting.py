"""The defaulter: names, protocol and runtime versions, resources, logger mode, idempotence."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfserving_operator.api import InferenceService, OperatorConfig, default_inference_service

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def _server(version: str, gpu: str = "") -> dict[str, Any]:
    return {"image": "img", "defaultImageVersion": version, "defaultGpuImageVersion": gpu}


# Distinct versions per server, so every expected value shows which config entry was used.
CONFIG = OperatorConfig.model_validate(
    {
        "predictors": {
            "sklearn": {"v1": _server("sk1"), "v2": _server("sk2")},
            "xgboost": {"v1": _server("xg1"), "v2": _server("xg2")},
            "pytorch": {"v1": _server("pt1", "pt1-gpu"), "v2": _server("ts2", "ts2-gpu")},
            "tensorflow": _server("tf", "tf-gpu"),
            "triton": _server("tr"),
            "onnx": _server("ox"),
            "pmml": _server("pm"),
            "lightgbm": _server("lg"),
            "paddle": _server("pd"),
        },
        "explainers": {
            "alibi": {"image": "a", "defaultImageVersion": "al"},
            "aix": {"image": "a", "defaultImageVersion": "ai"},
            "art": {"image": "a", "defaultImageVersion": "ar"},
        },
        "inferenceService": {
            "resource": {
                "cpuRequest": "1",
                "cpuLimit": "1",
                "memoryRequest": "2Gi",
                "memoryLimit": "2Gi",
            }
        },
    }
)

DEFAULT_RESOURCES = {
    "requests": {"cpu": "1", "memory": "2Gi"},
    "limits": {"cpu": "1", "memory": "2Gi"},
}
GPU_RESOURCES = {
    "requests": {"cpu": "1", "memory": "2Gi"},
    "limits": {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "1"},
}
URI = "gs://bucket/model"


def _isvc(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> InferenceService:
    metadata: dict[str, Any] = {"name": "model", "namespace": "ns"}
    if annotations:
        metadata["annotations"] = annotations
    return InferenceService.model_validate({"metadata": metadata, "spec": spec})


def _defaulted(spec: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = default_inference_service(_isvc(spec), CONFIG).to_wire()["spec"]
    return result


def _framework(version: str, protocol: str | None = None, **extra: Any) -> dict[str, Any]:
    expected: dict[str, Any] = {
        "name": "kfserving-container",
        "storageUri": URI,
        "runtimeVersion": version,
        "resources": DEFAULT_RESOURCES,
    }
    if protocol:
        expected["protocolVersion"] = protocol
    expected.update(extra)
    return expected


PREDICTOR_CASES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("sklearn-v1", "sklearn", {}, _framework("sk1", "v1")),
    ("sklearn-v2", "sklearn", {"protocolVersion": "v2"}, _framework("sk2", "v2")),
    ("xgboost-v1", "xgboost", {}, _framework("xg1", "v1")),
    ("xgboost-v2", "xgboost", {"protocolVersion": "v2"}, _framework("xg2", "v2")),
    ("tensorflow", "tensorflow", {}, _framework("tf")),
    (
        "tensorflow-gpu",
        "tensorflow",
        {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
        _framework("tf-gpu", resources=GPU_RESOURCES),
    ),
    ("torchserve", "pytorch", {}, _framework("ts2", "v1")),
    (
        "torchserve-gpu",
        "pytorch",
        {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
        _framework("ts2-gpu", "v1", resources=GPU_RESOURCES),
    ),
    (
        "pytorchserver",
        "pytorch",
        {"modelClassName": "Net"},
        _framework("pt1", "v1", modelClassName="Net"),
    ),
    (
        "pytorchserver-gpu",
        "pytorch",
        {"modelClassName": "Net", "resources": {"limits": {"nvidia.com/gpu": "1"}}},
        _framework("pt1-gpu", "v1", modelClassName="Net", resources=GPU_RESOURCES),
    ),
    (
        "pytorch-v2",
        "pytorch",
        {"modelClassName": "Net", "protocolVersion": "v2"},
        _framework("ts2", "v2", modelClassName="Net"),
    ),
    ("triton", "triton", {}, _framework("tr")),
    (
        "triton-gpu-has-no-gpu-tag",
        "triton",
        {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
        _framework("tr", resources=GPU_RESOURCES),
    ),
    ("onnx", "onnx", {}, _framework("ox")),
    ("pmml", "pmml", {}, _framework("pm")),
    ("lightgbm", "lightgbm", {}, _framework("lg")),
    ("paddle", "paddle", {}, _framework("pd")),
]


@pytest.mark.parametrize(
    ("framework", "given", "expected"),
    [case[1:] for case in PREDICTOR_CASES],
    ids=[case[0] for case in PREDICTOR_CASES],
)
def test_predictor_frameworks(
    framework: str, given: dict[str, Any], expected: dict[str, Any]
) -> None:
    spec = _defaulted({"predictor": {framework: {"storageUri": URI, **given}}})
    assert spec == {"predictor": {framework: expected}}


@pytest.mark.parametrize(
    ("framework", "explainer_type", "version"),
    [("alibi", "AnchorTabular", "al"), ("aix", "LimeImages", "ai"), ("art", "SquareAttack", "ar")],
)
def test_explainer_frameworks(framework: str, explainer_type: str, version: str) -> None:
    spec = _defaulted(
        {
            "predictor": {"sklearn": {"storageUri": URI}},
            "explainer": {framework: {"type": explainer_type, "storageUri": URI}},
        }
    )
    assert spec["explainer"] == {
        framework: {
            "name": "kfserving-container",
            "type": explainer_type,
            "storageUri": URI,
            "runtimeVersion": version,
            "resources": DEFAULT_RESOURCES,
        }
    }


def test_custom_predictor_and_transformer_default_first_container_only() -> None:
    spec = _defaulted(
        {
            "predictor": {
                "containers": [
                    {"name": "mine", "image": "me/model"},
                    {"name": "sidecar", "image": "me/side"},
                ]
            },
            "transformer": {"containers": [{"image": "me/transformer"}]},
            "explainer": {"containers": [{"image": "me/explainer"}]},
        }
    )
    assert spec["predictor"]["containers"] == [
        {"name": "kfserving-container", "image": "me/model", "resources": DEFAULT_RESOURCES},
        {"name": "sidecar", "image": "me/side"},
    ]
    assert spec["transformer"]["containers"] == [
        {"name": "kfserving-container", "image": "me/transformer", "resources": DEFAULT_RESOURCES}
    ]
    assert spec["explainer"]["containers"][0]["resources"] == DEFAULT_RESOURCES


def test_user_values_are_kept() -> None:
    spec = _defaulted(
        {
            "predictor": {
                "sklearn": {
                    "storageUri": URI,
                    "runtimeVersion": "mine",
                    "protocolVersion": "v2",
                    "resources": {"requests": {"memory": "1Gi"}, "limits": {"cpu": "500m"}},
                }
            }
        }
    )
    assert spec["predictor"]["sklearn"] == {
        "name": "kfserving-container",
        "storageUri": URI,
        "runtimeVersion": "mine",
        "protocolVersion": "v2",
        "resources": {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"cpu": "500m", "memory": "2Gi"},
        },
    }


def test_request_above_default_limit_raises_the_limit() -> None:
    spec = _defaulted(
        {"predictor": {"sklearn": {"resources": {"requests": {"cpu": "4", "memory": "8Gi"}}}}}
    )
    assert spec["predictor"]["sklearn"]["resources"] == {
        "requests": {"cpu": "4", "memory": "8Gi"},
        "limits": {"cpu": "4", "memory": "8Gi"},
    }


def test_logger_mode_defaults_to_all_everywhere() -> None:
    spec = _defaulted(
        {
            "predictor": {"logger": {"url": "http://sink"}, "sklearn": {}},
            "transformer": {"logger": {}, "containers": [{"image": "t"}]},
            "explainer": {"logger": {"mode": "response"}, "alibi": {"type": "AnchorText"}},
        }
    )
    assert spec["predictor"]["logger"] == {"url": "http://sink", "mode": "all"}
    assert spec["transformer"]["logger"] == {"mode": "all"}
    assert spec["explainer"]["logger"] == {"mode": "response"}


def test_no_logger_no_mode_and_no_replica_defaults() -> None:
    spec = _defaulted({"predictor": {"sklearn": {}}})
    assert "logger" not in spec["predictor"]
    assert "minReplicas" not in spec["predictor"]


def test_ambiguous_component_is_left_alone() -> None:
    given = {"predictor": {"sklearn": {"storageUri": URI}, "xgboost": {"storageUri": URI}}}
    assert _defaulted(copy.deepcopy(given)) == given


def test_input_is_not_modified() -> None:
    isvc = _isvc({"predictor": {"sklearn": {"storageUri": URI}, "logger": {}}})
    before = isvc.to_wire()
    result = default_inference_service(isvc, CONFIG)
    assert isvc.to_wire() == before
    assert result.to_wire() != before


def test_config_resources_are_used() -> None:
    config = OperatorConfig.model_validate(
        {
            "inferenceService": {
                "resource": {
                    "cpuRequest": "250m",
                    "cpuLimit": "2",
                    "memoryRequest": "512Mi",
                    "memoryLimit": "4Gi",
                }
            }
        }
    )
    result = default_inference_service(_isvc({"predictor": {"sklearn": {}}}), config)
    resources = result.to_wire()["spec"]["predictor"]["sklearn"]["resources"]
    assert resources == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }


def test_shipped_config_defaults() -> None:
    config = OperatorConfig()
    result = default_inference_service(_isvc({"predictor": {"sklearn": {}}}), config)
    sklearn = result.to_wire()["spec"]["predictor"]["sklearn"]
    assert sklearn["runtimeVersion"] == config.predictors.sklearn.v1.default_image_version
    assert sklearn["resources"] == DEFAULT_RESOURCES


IDEMPOTENCE_SPECS: list[dict[str, Any]] = [
    {"predictor": {"pytorch": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}}},
    {"predictor": {"sklearn": {"resources": {"requests": {"cpu": "3"}}}, "logger": {}}},
    {
        "predictor": {"containers": [{"image": "x"}]},
        "transformer": {"containers": [{"image": "t"}]},
    },
    {"predictor": {"sklearn": {}, "xgboost": {}}, "explainer": {"art": {"type": "SquareAttack"}}},
]


@pytest.mark.parametrize("spec", IDEMPOTENCE_SPECS)
def test_idempotent(spec: dict[str, Any]) -> None:
    once = default_inference_service(_isvc(spec), CONFIG)
    twice = default_inference_service(once, CONFIG)
    assert twice.to_wire() == once.to_wire()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_idempotent_on_examples(path: Path) -> None:
    isvc = InferenceService.model_validate(yaml.safe_load(path.read_text()))
    once = default_inference_service(isvc, OperatorConfig())
    assert default_inference_service(once, OperatorConfig()) == once
    predictor = once.spec.predictor.implementation()
    assert predictor is not None and predictor.spec.name == "kfserving-container"
