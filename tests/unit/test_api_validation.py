"""The validator: one failing case per rule, path and message checked; all errors reported."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfserving_operator.api import (
    FieldError,
    InferenceService,
    OperatorConfig,
    default_inference_service,
    validate_inference_service,
    validate_inference_service_dict,
)
from kfserving_operator.api.child_names import generated_names, max_name_length
from kfserving_operator.api.field_errors import format_path, parse_inference_service
from kfserving_operator.api.values import storage_uri_error

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
CONFIG = OperatorConfig()
GPU = {"limits": {"nvidia.com/gpu": "1"}}
SI = "serving.kubeflow.org/storage-initializer-"


def _obj(
    predictor: dict[str, Any] | None = None,
    name: str = "model",
    annotations: dict[str, str] | None = None,
    **components: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "default"}
    if annotations is not None:
        metadata["annotations"] = annotations
    spec: dict[str, Any] = {
        "predictor": predictor if predictor is not None else {"sklearn": {"storageUri": "gs://b/m"}}
    }
    spec.update(components)
    return {
        "apiVersion": "serving.kubeflow.org/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": spec,
    }


def _pred(framework: str, **fields: Any) -> dict[str, Any]:
    return {framework: fields}


def _custom(*containers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"containers": list(containers), **fields}


ALIBI = {"alibi": {"type": "AnchorTabular"}}
TRANSFORMER = {"containers": [{"image": "t"}]}

# (id, object, expected path, fragment of the message)
FAILING: list[tuple[str, dict[str, Any], str, str]] = [
    # metadata.name
    ("name-uppercase", _obj(name="Model"), "metadata.name", "lower case alphanumeric"),
    ("name-trailing-dash", _obj(name="model-"), "metadata.name", "^[a-z]([-a-z0-9]*[a-z0-9])?$"),
    ("name-leading-digit", _obj(name="1model"), "metadata.name", "start with a lower case letter"),
    ("name-missing", _obj(name=""), "metadata.name", "is required"),
    (
        "name-too-long-predictor",
        _obj(name="a" * 40),
        "metadata.name",
        "must be at most 39 characters for an InferenceService with a predictor:",
    ),
    (
        "name-too-long-transformer",
        _obj(name="a" * 38, transformer=TRANSFORMER),
        "metadata.name",
        "must be at most 37 characters for an InferenceService with a predictor and a transformer",
    ),
    (
        "name-too-long-tag-routing",
        _obj(name="a" * 39, annotations={"serving.kubeflow.org/enable-tag-routing": "true"}),
        "metadata.name",
        "at most 38 characters for an InferenceService with a predictor and tag routing",
    ),
    (
        "name-too-long-all-components",
        _obj(name="a" * 38, transformer=TRANSFORMER, explainer=ALIBI),
        "metadata.name",
        "a predictor, a transformer and an explainer",
    ),
    # storage initializer annotations
    (
        "si-cpu-request-not-quantity",
        _obj(annotations={SI + "cpu-request": "lots"}),
        f"metadata.annotations[{SI}cpu-request]",
        "must be a Kubernetes quantity",
    ),
    (
        "si-memory-limit-not-quantity",
        _obj(annotations={SI + "memory-limit": "1GB"}),
        f"metadata.annotations[{SI}memory-limit]",
        "got '1GB'",
    ),
    (
        "si-request-above-limit",
        _obj(annotations={SI + "memory-request": "4Gi"}),
        f"metadata.annotations[{SI}memory-request]",
        "memory request must not exceed its memory limit",
    ),
    # exactly one implementation
    (
        "predictor-none",
        _obj({"minReplicas": 1}),
        "spec.predictor",
        "exactly one of [sklearn, xgboost, tensorflow, pytorch, triton, onnx, pmml, lightgbm, "
        "paddle, containers] must be specified; found none",
    ),
    (
        "predictor-two-frameworks",
        _obj({"sklearn": {}, "xgboost": {}}),
        "spec.predictor",
        "found 2: sklearn, xgboost",
    ),
    (
        "predictor-framework-and-containers",
        _obj({"sklearn": {}, "containers": [{"image": "x"}]}),
        "spec.predictor",
        "found 2: sklearn, containers",
    ),
    (
        "explainer-none",
        _obj(explainer={}),
        "spec.explainer",
        "exactly one of [alibi, aix, art, containers] must be specified",
    ),
    (
        "transformer-none",
        _obj(transformer={"containers": []}),
        "spec.transformer",
        "exactly one of [containers] must be specified; found none",
    ),
    # storage URIs
    (
        "storage-uri-ftp",
        _obj(_pred("sklearn", storageUri="ftp://host/model")),
        "spec.predictor.sklearn.storageUri",
        "gs://, s3://, pvc://, file://, http://, https://, hdfs://, webhdfs://",
    ),
    (
        "storage-uri-azure-without-container",
        _obj(_pred("xgboost", storageUri="https://acct.blob.core.windows.net")),
        "spec.predictor.xgboost.storageUri",
        "https://<account>.blob.core.windows.net/<container>/<path>",
    ),
    (
        "storage-uri-azure-over-http",
        _obj(_pred("xgboost", storageUri="http://acct.blob.core.windows.net/c/m")),
        "spec.predictor.xgboost.storageUri",
        "an Azure blob URI must look like",
    ),
    (
        "storage-uri-empty-bucket",
        _obj(_pred("lightgbm", storageUri="s3://")),
        "spec.predictor.lightgbm.storageUri",
        "must name a location after 's3://'",
    ),
    (
        "storage-uri-explainer",
        _obj(explainer={"alibi": {"type": "AnchorText", "storageUri": "oci://x/y"}}),
        "spec.explainer.alibi.storageUri",
        "must be a local path or a URI starting with one of",
    ),
    (
        "storage-uri-custom-env",
        _obj(_custom({"image": "x", "env": [{"name": "STORAGE_URI", "value": "ftp://a/b"}]})),
        "spec.predictor.containers[0].env[0].value",
        "STORAGE_URI must be a local path or a URI",
    ),
    # framework rules
    (
        "tensorflow-gpu-without-gpu-runtime",
        _obj(_pred("tensorflow", runtimeVersion="2.6.2", resources=GPU)),
        "spec.predictor.tensorflow.runtimeVersion",
        "must contain '-gpu' because resources.limits requests nvidia.com/gpu",
    ),
    (
        "tensorflow-gpu-runtime-without-gpu",
        _obj(_pred("tensorflow", runtimeVersion="2.6.2-gpu")),
        "spec.predictor.tensorflow.runtimeVersion",
        "must not contain '-gpu' unless resources.limits requests nvidia.com/gpu",
    ),
    (
        "pytorch-gpu-without-gpu-runtime",
        _obj(_pred("pytorch", runtimeVersion="0.9.0", resources=GPU)),
        "spec.predictor.pytorch.runtimeVersion",
        "must contain '-gpu'",
    ),
    (
        "pytorch-gpu-runtime-without-gpu",
        _obj(_pred("pytorch", runtimeVersion="0.9.0-gpu")),
        "spec.predictor.pytorch.runtimeVersion",
        "must not contain '-gpu'",
    ),
    (
        "pytorch-v2",
        _obj(_pred("pytorch", protocolVersion="v2")),
        "spec.predictor.pytorch.protocolVersion",
        "invalid inference protocol version for pytorch",
    ),
    (
        "protocol-unknown",
        _obj(_pred("sklearn", protocolVersion="v3")),
        "spec.predictor.sklearn.protocolVersion",
        "must be v1 or v2; got 'v3'",
    ),
    (
        "triton-v1",
        _obj(_pred("triton", protocolVersion="v1")),
        "spec.predictor.triton.protocolVersion",
        "triton serves only the v2 protocol",
    ),
    (
        "tensorflow-v2",
        _obj(_pred("tensorflow", protocolVersion="v2")),
        "spec.predictor.tensorflow.protocolVersion",
        "tensorflow serves only the v1 protocol",
    ),
    (
        "onnx-extension",
        _obj(_pred("onnx", storageUri="gs://bucket/model.pt")),
        "spec.predictor.onnx.storageUri",
        "must name a .onnx file or a directory (no extension); got extension '.pt'",
    ),
    (
        "pmml-workers-above-one",
        _obj(_pred("pmml", args=["--foo", "--workers=2"])),
        "spec.predictor.pmml.args[1]",
        "pmml supports at most one worker",
    ),
    (
        "pmml-workers-without-value",
        _obj(_pred("pmml", args=["--workers"])),
        "spec.predictor.pmml.args[0]",
        "invalid workers argument",
    ),
    (
        "custom-protocol-env",
        _obj(
            _custom(
                {
                    "image": "x",
                    "env": [{"name": "A", "value": "1"}, {"name": "PROTOCOL", "value": "grpc"}],
                }
            )
        ),
        "spec.predictor.containers[0].env[1].value",
        "PROTOCOL must be v1 or v2; got 'grpc'",
    ),
    (
        "custom-without-image",
        _obj(_custom({"name": "x"})),
        "spec.predictor.containers[0].image",
        "is required for a custom predictor",
    ),
    (
        "custom-second-container-without-name",
        _obj(_custom({"image": "x"}, {"image": "y"})),
        "spec.predictor.containers[1].name",
        "is required for every container after the first",
    ),
    (
        "transformer-without-image",
        _obj(transformer={"containers": [{"args": ["x"]}]}),
        "spec.transformer.containers[0].image",
        "is required for a custom transformer",
    ),
    (
        "resources-bad-quantity",
        _obj(_pred("sklearn", resources={"limits": {"memory": "2 GB"}})),
        "spec.predictor.sklearn.resources.limits.memory",
        "must be a Kubernetes quantity",
    ),
    (
        "resources-request-above-limit",
        _obj(_pred("sklearn", resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}})),
        "spec.predictor.sklearn.resources.requests.cpu",
        "must be less than or equal to resources.limits.cpu (1); got 2",
    ),
    # component extension fields
    (
        "container-concurrency-negative",
        _obj({"sklearn": {}, "containerConcurrency": -1}),
        "spec.predictor.containerConcurrency",
        "must be greater than or equal to 0; got -1",
    ),
    (
        "min-replicas-negative",
        _obj({"sklearn": {}, "minReplicas": -2}),
        "spec.predictor.minReplicas",
        "must be greater than or equal to 0; got -2",
    ),
    (
        "max-replicas-negative",
        _obj({"sklearn": {}, "maxReplicas": -1}),
        "spec.predictor.maxReplicas",
        "must be greater than or equal to 0; got -1",
    ),
    (
        "min-above-max",
        _obj({"sklearn": {}, "minReplicas": 5, "maxReplicas": 3}),
        "spec.predictor.minReplicas",
        "must be less than or equal to maxReplicas (3) unless maxReplicas is 0; got 5",
    ),
    (
        "canary-above-100",
        _obj({"sklearn": {}, "canaryTrafficPercent": 101}),
        "spec.predictor.canaryTrafficPercent",
        "must be between 0 and 100; got 101",
    ),
    (
        "canary-negative",
        _obj({"sklearn": {}, "canaryTrafficPercent": -1}),
        "spec.predictor.canaryTrafficPercent",
        "must be between 0 and 100",
    ),
    (
        "logger-mode",
        _obj({"sklearn": {}, "logger": {"mode": "everything"}}),
        "spec.predictor.logger.mode",
        "must be one of [all, request, response]; got 'everything'",
    ),
    (
        "logger-url",
        _obj({"sklearn": {}, "logger": {"url": "message-dumper.default"}}),
        "spec.predictor.logger.url",
        "must be an http:// or https:// URL",
    ),
    (
        "batcher-max-batch-size",
        _obj({"sklearn": {}, "batcher": {"maxBatchSize": 0}}),
        "spec.predictor.batcher.maxBatchSize",
        "must be greater than or equal to 1; got 0",
    ),
    (
        "batcher-max-latency",
        _obj(transformer={**TRANSFORMER, "batcher": {"maxLatency": -5}}),
        "spec.transformer.batcher.maxLatency",
        "must be greater than or equal to 1",
    ),
    (
        "batcher-timeout",
        _obj({"sklearn": {}, "batcher": {"timeout": 0}}),
        "spec.predictor.batcher.timeout",
        "must be greater than or equal to 1",
    ),
    (
        "batcher-on-explainer",
        _obj(explainer={**ALIBI, "batcher": {"maxBatchSize": 4}}),
        "spec.explainer.batcher",
        "batching is supported only on the predictor and the transformer",
    ),
    (
        "scale-target",
        _obj({"sklearn": {}, "scaleTarget": 0}),
        "spec.predictor.scaleTarget",
        "must be greater than or equal to 1; got 0",
    ),
    (
        "scale-metric-unknown",
        _obj({"sklearn": {}, "scaleMetric": "gpu"}),
        "spec.predictor.scaleMetric",
        "must be one of [cpu, memory, concurrency, rps]; got 'gpu'",
    ),
    (
        "scale-metric-cpu-needs-hpa",
        _obj({"sklearn": {}, "scaleMetric": "cpu"}),
        "spec.predictor.scaleMetric",
        "cpu needs the Knative HPA autoscaler",
    ),
    (
        "timeout",
        _obj(explainer={**ALIBI, "timeout": 0}),
        "spec.explainer.timeout",
        "must be greater than or equal to 1; got 0",
    ),
    # explainers
    (
        "alibi-type",
        _obj(explainer={"alibi": {"type": "Anchors"}}),
        "spec.explainer.alibi.type",
        "must be one of [AnchorTabular, AnchorImages, AnchorText, Counterfactuals, Contrastive]",
    ),
    (
        "aix-type",
        _obj(explainer={"aix": {"type": "AnchorTabular"}}),
        "spec.explainer.aix.type",
        "must be one of [LimeImages]; got 'AnchorTabular'",
    ),
    (
        "art-type",
        _obj(explainer={"art": {"type": "HopSkipJump"}}),
        "spec.explainer.art.type",
        "must be one of [SquareAttack]",
    ),
    (
        "explainer-config-empty-key",
        _obj(explainer={"alibi": {"type": "AnchorText", "config": {"": "1"}}}),
        "spec.explainer.alibi.config",
        "keys must be non-empty option names without spaces; got ''",
    ),
    (
        "explainer-config-key-with-space",
        _obj(explainer={"alibi": {"type": "AnchorText", "config": {"batch size": "1"}}}),
        "spec.explainer.alibi.config",
        "got 'batch size'",
    ),
    # parse errors of raw objects
    (
        "unknown-field-suggestion",
        _obj({"sklearn": {"storageURI": "gs://b/m"}}),
        "spec.predictor.sklearn.storageURI",
        "unknown field (did you mean 'storageUri'?)",
    ),
    (
        "unknown-field-listing",
        _obj({"sklearn": {}, "zzz": 1}),
        "spec.predictor.zzz",
        "unknown field",
    ),
    (
        "wrong-type-int",
        _obj({"sklearn": {}, "minReplicas": "many"}),
        "spec.predictor.minReplicas",
        "must be an integer",
    ),
    (
        "wrong-type-list",
        _obj({"sklearn": {"args": "--workers=1"}}),
        "spec.predictor.sklearn.args",
        "must be a list",
    ),
    (
        "wrong-type-quantity",
        _obj({"sklearn": {"resources": {"limits": {"cpu": ["1"]}}}}),
        "spec.predictor.sklearn.resources.limits.cpu",
        "must be a Kubernetes quantity",
    ),
    (
        "missing-explainer-type",
        _obj(explainer={"alibi": {}}),
        "spec.explainer.alibi.type",
        "is required",
    ),
    (
        "missing-predictor",
        {"metadata": {"name": "m"}, "spec": {}},
        "spec.predictor",
        "is required",
    ),
    # What Knative refuses when it validates the revision (issue 10, item 7).
    ("knative-concurrency", _obj({"sklearn": {}, "containerConcurrency": 1001}),
     "spec.predictor.containerConcurrency", "less than or equal to 1000"),
    ("knative-timeout", _obj({"sklearn": {}, "timeout": 601}),
     "spec.predictor.timeout", "less than or equal to 600"),
    ("knative-max-replicas-int32", _obj({"sklearn": {}, "maxReplicas": 2**31}),
     "spec.predictor.maxReplicas", "32-bit"),
    ("knative-duplicate-container", _obj(_custom({"name": "a", "image": "x"},
                                                 {"name": "a", "image": "y"})),
     "spec.predictor.containers[1].name", "duplicate container name 'a'"),
    ("knative-two-ports", _obj(_custom({"image": "x", "ports": [{"containerPort": 8080},
                                                                {"containerPort": 8081}]})),
     "spec.predictor.containers[0].ports[1]", "more than one container port"),
    ("knative-two-ports-two-containers",
     _obj(_custom({"image": "x", "ports": [{"containerPort": 8080}]},
                  {"name": "side", "image": "y", "ports": [{"containerPort": 9000}]})),
     "spec.predictor.containers[1].ports[0]", "exactly one port"),
    ("knative-reserved-port", _obj(_pred("sklearn", ports=[{"containerPort": 8012}])),
     "spec.predictor.sklearn.ports[0].containerPort", "reserved by Knative"),
    ("knative-port-name", _obj(_pred("sklearn", ports=[{"containerPort": 8080,
                                                        "name": "grpc"}])),
     "spec.predictor.sklearn.ports[0].name", "'h2c' or 'http1'"),
    ("knative-env-empty-name", _obj(_custom({"image": "x", "env": [{"name": "", "value": "1"}]})),
     "spec.predictor.containers[0].env[0].name", "is required"),
    ("knative-env-reserved", _obj(_pred("sklearn", env=[{"name": "K_SERVICE", "value": "x"}])),
     "spec.predictor.sklearn.env[0].name", "set by Knative"),
    ("knative-env-field-ref",
     _obj(_custom({"image": "x", "env": [{"name": "NODE", "valueFrom": {
         "fieldRef": {"fieldPath": "spec.nodeName"}}}]})),
     "spec.predictor.containers[0].env[0].valueFrom.fieldRef", "podspec-fieldref"),
    ("knative-image-reference", _obj(_custom({"image": "Registry/UPPER case:tag"})),
     "spec.predictor.containers[0].image", "container image reference"),
    ("knative-runtime-version-tag", _obj(_pred("sklearn", runtimeVersion="v1 beta")),
     "spec.predictor.sklearn.runtimeVersion", "valid image tag"),
    ("knative-negative-target",
     _obj(annotations={"autoscaling.knative.dev/target": "-1"}),
     "metadata.annotations[autoscaling.knative.dev/target]", "at least 0.01"),
    ("knative-min-scale-text",
     _obj(annotations={"autoscaling.knative.dev/min-scale": "two"}),
     "metadata.annotations[autoscaling.knative.dev/min-scale]", "an integer"),
    ("knative-queue-proxy-name", _obj(_custom({"name": "queue-proxy", "image": "x"})),
     "spec.predictor.containers[0].name", "reserved for Knative"),
    # What Kubernetes refuses at pod creation (issue 11, item 8).
    ("k8s-negative-cpu", _obj(_pred("sklearn", resources={"limits": {"cpu": "-1"}})),
     "spec.predictor.sklearn.resources.limits.cpu", "greater than or equal to 0"),
    ("k8s-negative-memory-request",
     _obj(_custom({"image": "x", "resources": {"requests": {"memory": "-1Gi"}}})),
     "spec.predictor.containers[0].resources.requests.memory", "greater than or equal to 0"),
    ("k8s-fractional-gpu", _obj(_pred("sklearn", resources={"limits": {"nvidia.com/gpu": "0.5"}})),
     "spec.predictor.sklearn.resources.limits[nvidia.com/gpu]", "whole number"),
    ("k8s-gpu-request-not-limit",
     _obj(_pred("sklearn", resources={"limits": {"nvidia.com/gpu": "2"},
                                      "requests": {"nvidia.com/gpu": "1"}})),
     "spec.predictor.sklearn.resources.requests[nvidia.com/gpu]", "must equal"),
    ("k8s-unknown-resource", _obj(_pred("sklearn", resources={"limits": {"gpu": "1"}})),
     "spec.predictor.sklearn.resources.limits.gpu", "domain-qualified"),
    ("k8s-container-name", _obj(_custom({"name": "Model_Server", "image": "x"})),
     "spec.predictor.containers[0].name", "DNS label"),
    ("k8s-port-range", _obj(_pred("sklearn", ports=[{"containerPort": 70000}])),
     "spec.predictor.sklearn.ports[0].containerPort", "between 1 and 65535"),
    ("k8s-negative-si-annotation", _obj(annotations={SI + "cpu-limit": "-1"}),
     "metadata.annotations[serving.kubeflow.org/storage-initializer-cpu-limit]",
     "greater than or equal to 0"),
]


@pytest.mark.parametrize(
    ("obj", "path", "fragment"),
    [case[1:] for case in FAILING],
    ids=[case[0] for case in FAILING],
)
def test_rule_fails(obj: dict[str, Any], path: str, fragment: str) -> None:
    errors = validate_inference_service(obj, CONFIG)
    matching = [e for e in errors if e.path == path]
    assert matching, f"no error at {path}: {[str(e) for e in errors]}"
    assert any(fragment in e.message for e in matching), [str(e) for e in matching]


def test_enough_rules_are_covered() -> None:
    assert len(FAILING) >= 35
    assert len({case[0] for case in FAILING}) == len(FAILING)


PASSING: list[tuple[str, dict[str, Any]]] = [
    ("name-at-limit-predictor", _obj(name="a" * 39)),
    ("name-at-limit-transformer", _obj(name="a" * 37, transformer=TRANSFORMER)),
    (
        "name-at-limit-tag-routing",
        _obj(name="a" * 38, annotations={"serving.kubeflow.org/enable-tag-routing": "true"}),
    ),
    ("generate-name", {**_obj(name=""), "metadata": {"generateName": "model-"}}),
    ("local-path", _obj(_pred("sklearn", storageUri="/mnt/models/iris"))),
    ("relative-path", _obj(_pred("sklearn", storageUri="models/iris"))),
    ("pvc", _obj(_pred("sklearn", storageUri="pvc://claim/models"))),
    ("azure", _obj(_pred("sklearn", storageUri="https://acct.blob.core.windows.net/c/m"))),
    ("hdfs", _obj(_pred("sklearn", storageUri="hdfs://nn/models"))),
    ("webhdfs", _obj(_pred("sklearn", storageUri="webhdfs://nn/models"))),
    ("file", _obj(_pred("sklearn", storageUri="file:///models"))),
    ("onnx-file", _obj(_pred("onnx", storageUri="gs://bucket.name/model.onnx"))),
    ("onnx-dir-with-dotted-bucket", _obj(_pred("onnx", storageUri="gs://bucket.name"))),
    ("onnx-dir", _obj(_pred("onnx", storageUri="gs://bucket/models/"))),
    ("pmml-one-worker", _obj(_pred("pmml", args=["--workers=1"]))),
    ("tensorflow-gpu", _obj(_pred("tensorflow", runtimeVersion="2.6.2-gpu", resources=GPU))),
    ("pytorch-v1", _obj(_pred("pytorch", protocolVersion="v1"))),
    ("triton-v2", _obj(_pred("triton", protocolVersion="v2"))),
    ("sklearn-v2", _obj(_pred("sklearn", protocolVersion="v2"))),
    ("max-zero-min-any", _obj({"sklearn": {}, "minReplicas": 5, "maxReplicas": 0})),
    ("min-nil-max-one", _obj({"sklearn": {}, "maxReplicas": 1})),
    ("canary-bounds", _obj({"sklearn": {}, "canaryTrafficPercent": 0})),
    ("logger-without-mode", _obj({"sklearn": {}, "logger": {"url": "https://sink/x"}})),
    (
        "scale-metric-cpu-with-hpa",
        _obj(
            {"sklearn": {}, "scaleMetric": "cpu", "scaleTarget": 80},
            annotations={"autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev"},
        ),
    ),
    (
        "custom-protocol-v2",
        _obj(_custom({"image": "x", "env": [{"name": "PROTOCOL", "value": "v2"}]})),
    ),
    (
        "si-annotations",
        _obj(annotations={SI + "memory-request": "2Gi", SI + "memory-limit": "4Gi"}),
    ),
    (
        "explainer-aix",
        _obj(explainer={"aix": {"type": "LimeImages", "config": {"num_samples": "5"}}}),
    ),
    ("knative-limits", _obj({"sklearn": {}, "containerConcurrency": 1000, "timeout": 600,
                             "maxReplicas": 2**31 - 1},
                            annotations={"autoscaling.knative.dev/target": "0.5"})),
    ("one-port-and-digest", _obj(_custom(
        {"image": "registry.example.com:5000/team/server:1.0@sha256:" + "a" * 64,
         "ports": [{"containerPort": 8080, "name": "h2c", "protocol": "TCP"}]},
        {"name": "sidecar", "image": "busybox",
         "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}))),
    ("gpu-whole-and-equal", _obj(_pred("tensorflow", runtimeVersion="2.6.2-gpu", resources={
        "limits": {"nvidia.com/gpu": "2"}, "requests": {"nvidia.com/gpu": "2"}}))),
]


@pytest.mark.parametrize("obj", [c[1] for c in PASSING], ids=[c[0] for c in PASSING])
def test_valid_objects_pass(obj: dict[str, Any]) -> None:
    assert validate_inference_service(obj, CONFIG) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_are_valid(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    assert validate_inference_service(data, CONFIG) == []
    defaulted = default_inference_service(InferenceService.model_validate(data), CONFIG)
    assert validate_inference_service(defaulted, CONFIG) == []


def test_examples_exist_for_every_framework() -> None:
    names = {p.name for p in EXAMPLES}
    for required in (
        "sklearn.yaml",
        "xgboost.yaml",
        "tensorflow.yaml",
        "pytorch.yaml",
        "triton.yaml",
        "onnx.yaml",
        "pmml.yaml",
        "lightgbm.yaml",
        "paddle.yaml",
        "custom-predictor.yaml",
        "transformer.yaml",
        "explainer-alibi.yaml",
        "logger.yaml",
        "batcher.yaml",
        "cluster-local.yaml",
    ):
        assert required in names


def test_all_errors_are_reported_in_a_stable_order() -> None:
    obj = _obj(
        {
            "sklearn": {"storageUri": "ftp://x/y"},
            "minReplicas": -1,
            "canaryTrafficPercent": 200,
            "logger": {"mode": "x"},
        },
        name="Bad",
        explainer={"alibi": {"type": "Nope"}},
    )
    errors = validate_inference_service(obj, CONFIG)
    assert [e.path for e in errors] == [
        "metadata.name",
        "spec.predictor.sklearn.storageUri",
        "spec.predictor.minReplicas",
        "spec.predictor.canaryTrafficPercent",
        "spec.predictor.logger.mode",
        "spec.explainer.alibi.type",
    ]
    assert validate_inference_service(copy.deepcopy(obj), CONFIG) == errors


def test_model_and_dict_inputs_agree() -> None:
    obj = _obj({"sklearn": {}, "minReplicas": -1})
    model = InferenceService.model_validate(obj)
    assert validate_inference_service(model, CONFIG) == validate_inference_service_dict(obj, CONFIG)


def test_parse_errors_are_all_reported() -> None:
    obj = _obj({"sklearn": {"storageURI": "x", "args": 1}, "minReplicas": "x"})
    model, errors = parse_inference_service(obj)
    assert model is None
    assert sorted(e.path for e in errors) == [
        "spec.predictor.minReplicas",
        "spec.predictor.sklearn.args",
        "spec.predictor.sklearn.storageURI",
    ]
    assert parse_inference_service([])[1] == [FieldError("(object)", "must be a JSON object")]  # type: ignore[arg-type]


def test_field_error_str() -> None:
    error = FieldError("spec.predictor.canaryTrafficPercent", "must be between 0 and 100; got 101")
    assert str(error) == "spec.predictor.canaryTrafficPercent: must be between 0 and 100; got 101"
    with pytest.raises(AttributeError):
        error.path = "x"  # type: ignore[misc]


def test_format_path() -> None:
    assert format_path(("spec", "predictor", "containers", 0, "env", 2)) == (
        "spec.predictor.containers[0].env[2]"
    )
    assert (
        format_path(("resources", "limits", "nvidia.com/gpu")) == "resources.limits[nvidia.com/gpu]"
    )


def test_name_budget() -> None:
    assert max_name_length(["predictor"], False) == 39
    assert max_name_length(["predictor"], True) == 38
    assert max_name_length(["predictor", "transformer"], False) == 37
    assert max_name_length(["predictor", "explainer"], False) == 39
    names = [n for n, _ in generated_names("m", ["predictor"], True)]
    assert names == [
        "m-predictor-default",
        "m-predictor-default-00001",
        "prev-m-predictor-default",
        "latest-m-predictor-default",
    ]


def test_generate_name_budget_leaves_room_for_the_suffix() -> None:
    obj = _obj(name="")
    obj["metadata"] = {"generateName": "a" * 35}
    errors = validate_inference_service(obj, CONFIG)
    assert [str(e) for e in errors] == [
        "metadata.generateName: must be at most 34 characters for an InferenceService with a "
        "predictor: the longest generated name, a predictor revision "
        f"'{'a' * 35}-predictor-default-00001', must be a DNS label of at most 63 characters; "
        "got 35 characters"
    ]


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("gs://b/m", True),
        ("s3://b/m", True),
        ("https://example.com/model.tgz", True),
        ("http://example.com/model.tgz", True),
        ("/local/dir", True),
        ("oci://registry/model", False),
        ("hf://org/model", False),
        ("gs://", False),
        ("https://acct.blob.core.windows.net/container", True),
        ("https://acct.blob.core.windows.net/", False),
    ],
)
def test_storage_uri_error(uri: str, ok: bool) -> None:
    assert (storage_uri_error(uri) is None) is ok
