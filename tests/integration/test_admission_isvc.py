"""InferenceService admission against a real kube-apiserver and the real operator process.

Every rule of the validator (reference section 2.2, plus this project's additions) is broken
once, through ``kubectl apply``, and the rejection must name the field at fault. Some rules are
enforced by the CRD's OpenAPI schema rather than the webhook; those cases say so (``by``) and
check the apiserver's wording instead, but always require the field path.

Valid objects (every ``examples/*.yaml``) are admitted and read back with the defaults filled
in; a breaking update is refused and leaves the stored object as it was; deletion is never
blocked, not even of an object the webhook would now refuse.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfserving_operator.api.config import CONFIGMAP_NAME, OperatorConfig, parse_operator_config
from tests.support.cluster import Cluster, KubectlError, wait_for
from tests.support.operator import OperatorProcess

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

API_VERSION = "serving.kubeflow.org/v1beta1"
VALIDATOR = "inferenceservice.kfserving-webhook-server.v1beta1.validator"
MODEL_CONTAINER = "kfserving-container"
SI = "serving.kubeflow.org/storage-initializer-"
TAG_ROUTING = "serving.kubeflow.org/enable-tag-routing"
GPU = {"limits": {"nvidia.com/gpu": "1"}}
STORAGE = "gs://kfserving-samples/models/sklearn/iris"

pytestmark = pytest.mark.usefixtures("operator")


# --------------------------------------------------------------------------------------------
# Helpers


def isvc(
    name: str,
    predictor: dict[str, Any] | None = None,
    *,
    annotations: dict[str, str] | None = None,
    **components: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = annotations
    spec: dict[str, Any] = {
        "predictor": predictor if predictor is not None else {"sklearn": {"storageUri": STORAGE}}
    }
    spec.update(components)
    return {"apiVersion": API_VERSION, "kind": "InferenceService", "metadata": metadata,
            "spec": spec}


def sklearn(**extension: Any) -> dict[str, Any]:
    """A valid sklearn predictor plus the given component-extension fields."""
    return {"sklearn": {"storageUri": STORAGE}, **extension}


def apply(cluster: Cluster, namespace: str, obj: dict[str, Any] | str) -> str:
    text = obj if isinstance(obj, str) else yaml.safe_dump(obj)
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", input=text)


def get_isvc(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.get_json("inferenceservice", name, "-n", namespace)


def isvc_exists(cluster: Cluster, namespace: str, name: str) -> bool:
    out = cluster.kubectl("get", "inferenceservice", name, "-n", namespace,
                          "--ignore-not-found", "-o", "name")
    return bool(out.strip())


def current_config(cluster: Cluster, operator_namespace: str) -> OperatorConfig:
    """The config the operator runs with: its ConfigMap when there is one, else the defaults."""
    out = cluster.kubectl("get", "configmap", CONFIGMAP_NAME, "-n", operator_namespace,
                          "--ignore-not-found", "-o", "json")
    if not out.strip():
        return OperatorConfig()
    return parse_operator_config(json.loads(out).get("data") or {}).config


def operator_namespace(operator: OperatorProcess | None) -> str:
    return operator.namespace if operator is not None else "kfserving-system"


def is_subset(expected: Any, actual: Any) -> bool:
    """Whether everything in ``expected`` is in ``actual`` (dicts by key, lists by index)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and is_subset(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(expected) == len(actual)
                and all(is_subset(e, a) for e, a in zip(expected, actual, strict=True)))
    return bool(expected == actual)


@pytest.fixture(scope="module")
def rules_namespace(cluster: Cluster, operator: OperatorProcess | None) -> Iterator[str]:
    """One namespace for all rejected objects (nothing is ever stored in it)."""
    name = f"t-rules-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found",
                    check=False)


# --------------------------------------------------------------------------------------------
# Invalid objects: one per rule


WEBHOOK, SCHEMA, DECODE = "webhook", "schema", "decode"


@dataclass(frozen=True)
class Invalid:
    id: str
    obj: dict[str, Any]
    path: str
    fragment: str
    by: str = WEBHOOK
    also: tuple[tuple[str, str], ...] = field(default=())  # further (path, fragment) pairs


INVALID: list[Invalid] = [
    # ---- metadata.name
    Invalid("name-leading-digit", isvc("1model"), "metadata.name",
            "start with a lower case letter and end with an alphanumeric character"),
    Invalid("name-with-dot", isvc("model.v1"), "metadata.name",
            "^[a-z]([-a-z0-9]*[a-z0-9])?$); got 'model.v1'"),
    Invalid("name-uppercase", isvc("Model"), "metadata.name",
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters",
            by=SCHEMA),
    Invalid("name-too-long-predictor", isvc("a" * 40), "metadata.name",
            "must be at most 39 characters for an InferenceService with a predictor: the longest "
            "generated name"),
    Invalid("name-too-long-with-transformer",
            isvc("b" * 38, transformer={"containers": [{"image": "example/t:1"}]}),
            "metadata.name",
            "must be at most 37 characters for an InferenceService with a predictor and a "
            "transformer"),
    Invalid("name-too-long-with-tag-routing",
            isvc("c" * 39, annotations={TAG_ROUTING: "true"}), "metadata.name",
            "must be at most 38 characters for an InferenceService with a predictor and tag "
            "routing"),
    Invalid("name-too-long-all-components",
            isvc("d" * 38, transformer={"containers": [{"image": "example/t:1"}]},
                 explainer={"alibi": {"type": "AnchorTabular"}}),
            "metadata.name", "a predictor, a transformer and an explainer"),
    # ---- storage initializer annotations on the InferenceService
    Invalid("si-annotation-bad-quantity",
            isvc("si-bad-quantity", annotations={SI + "memory-limit": "1GB"}),
            f"metadata.annotations[{SI}memory-limit]",
            "must be a Kubernetes quantity (examples: 100m, 1, 2Gi, 512Mi); got '1GB'"),
    Invalid("si-annotation-request-above-limit",
            isvc("si-request-above-limit", annotations={SI + "cpu-request": "4"}),
            f"metadata.annotations[{SI}cpu-request]",
            "the storage initializer's cpu request must not exceed its cpu limit"),
    # ---- exactly one implementation per component
    Invalid("predictor-two-frameworks",
            isvc("two-frameworks", {"sklearn": {}, "xgboost": {}}), "spec.predictor",
            "exactly one of [sklearn, xgboost, tensorflow, pytorch, triton, onnx, pmml, "
            "lightgbm, paddle, containers] must be specified; found 2: sklearn, xgboost"),
    Invalid("predictor-framework-and-containers",
            isvc("framework-and-containers",
                 {"sklearn": {}, "containers": [{"image": "example/m:1"}]}),
            "spec.predictor", "found 2: sklearn, containers"),
    Invalid("predictor-no-implementation", isvc("no-implementation", {"minReplicas": 1}),
            "spec.predictor", "must be specified; found none"),
    Invalid("explainer-two-implementations",
            isvc("explainer-two",
                 explainer={"alibi": {"type": "AnchorTabular"}, "aix": {"type": "LimeImages"}}),
            "spec.explainer",
            "exactly one of [alibi, aix, art, containers] must be specified; found 2: alibi, aix"),
    Invalid("transformer-without-containers",
            isvc("transformer-empty", transformer={"containers": []}), "spec.transformer",
            "exactly one of [containers] must be specified; found none"),
    Invalid("transformer-container-without-image",
            isvc("transformer-no-image", transformer={"containers": [{"args": ["--x"]}]}),
            "spec.transformer.containers[0].image", "is required for a custom transformer"),
    Invalid("custom-predictor-without-image",
            isvc("custom-no-image", {"containers": [{"name": "server"}]}),
            "spec.predictor.containers[0].image", "is required for a custom predictor"),
    Invalid("custom-second-container-without-name",
            isvc("custom-unnamed",
                 {"containers": [{"image": "example/m:1"}, {"image": "example/side:1"}]}),
            "spec.predictor.containers[1].name",
            "is required for every container after the first"),
    # ---- storage URIs
    Invalid("storage-uri-bad-scheme",
            isvc("uri-ftp", {"sklearn": {"storageUri": "ftp://host/model"}}),
            "spec.predictor.sklearn.storageUri",
            "must be a local path or a URI starting with one of gs://, s3://, pvc://, file://, "
            "http://, https://"),
    Invalid("storage-uri-bad-azure-blob",
            isvc("uri-azure", {"xgboost": {"storageUri": "https://acct.blob.core.windows.net"}}),
            "spec.predictor.xgboost.storageUri",
            "an Azure blob URI must look like https://<account>.blob.core.windows.net"
            "/<container>/<path>"),
    Invalid("storage-uri-no-location",
            isvc("uri-empty-bucket", {"lightgbm": {"storageUri": "s3://"}}),
            "spec.predictor.lightgbm.storageUri", "must name a location after 's3://'"),
    Invalid("storage-uri-explainer",
            isvc("uri-explainer",
                 explainer={"alibi": {"type": "AnchorText", "storageUri": "oci://x/y"}}),
            "spec.explainer.alibi.storageUri", "got 'oci://x/y'"),
    Invalid("storage-uri-custom-env",
            isvc("uri-env", {"containers": [{
                "image": "example/m:1", "env": [{"name": "STORAGE_URI", "value": "ftp://a/b"}]}]}),
            "spec.predictor.containers[0].env[0].value", "STORAGE_URI must be a local path"),
    # ---- framework rules
    Invalid("tensorflow-gpu-limit-without-gpu-runtime",
            isvc("tf-gpu-limit", {"tensorflow": {"runtimeVersion": "2.6.2", "resources": GPU}}),
            "spec.predictor.tensorflow.runtimeVersion",
            "must contain '-gpu' because resources.limits requests nvidia.com/gpu; got '2.6.2'"),
    Invalid("tensorflow-gpu-runtime-without-gpu-limit",
            isvc("tf-gpu-runtime", {"tensorflow": {"runtimeVersion": "2.6.2-gpu"}}),
            "spec.predictor.tensorflow.runtimeVersion",
            "must not contain '-gpu' unless resources.limits requests nvidia.com/gpu"),
    Invalid("pytorch-gpu-limit-without-gpu-runtime",
            isvc("pt-gpu-limit", {"pytorch": {"runtimeVersion": "0.9.0", "resources": GPU}}),
            "spec.predictor.pytorch.runtimeVersion", "must contain '-gpu'"),
    Invalid("pytorch-gpu-runtime-without-gpu-limit",
            isvc("pt-gpu-runtime", {"pytorch": {"runtimeVersion": "0.9.0-gpu"}}),
            "spec.predictor.pytorch.runtimeVersion", "must not contain '-gpu'"),
    Invalid("pytorch-protocol-v2",
            isvc("pt-v2", {"pytorch": {"protocolVersion": "v2"}}),
            "spec.predictor.pytorch.protocolVersion",
            "invalid inference protocol version for pytorch"),
    Invalid("triton-protocol-v1",
            isvc("triton-v1", {"triton": {"protocolVersion": "v1"}}),
            "spec.predictor.triton.protocolVersion", "triton serves only the v2 protocol"),
    Invalid("v1-only-framework-protocol-v2",
            isvc("tf-v2", {"tensorflow": {"protocolVersion": "v2"}}),
            "spec.predictor.tensorflow.protocolVersion", "tensorflow serves only the v1 protocol"),
    Invalid("protocol-unknown",
            isvc("protocol-v3", {"sklearn": {"protocolVersion": "v3"}}),
            "spec.predictor.sklearn.protocolVersion", 'Unsupported value: "v3"', by=SCHEMA),
    Invalid("onnx-extension",
            isvc("onnx-pt", {"onnx": {"storageUri": "gs://bucket/model.pt"}}),
            "spec.predictor.onnx.storageUri",
            "must name a .onnx file or a directory (no extension); got extension '.pt'"),
    Invalid("pmml-workers-2",
            isvc("pmml-workers", {"pmml": {"args": ["--foo", "--workers=2"]}}),
            "spec.predictor.pmml.args[1]", "pmml supports at most one worker"),
    Invalid("pmml-bare-workers",
            isvc("pmml-bare", {"pmml": {"args": ["--workers"]}}),
            "spec.predictor.pmml.args[0]", "invalid workers argument"),
    Invalid("custom-protocol-env",
            isvc("custom-protocol", {"containers": [{"image": "example/m:1", "env": [
                {"name": "A", "value": "1"}, {"name": "PROTOCOL", "value": "grpc"}]}]}),
            "spec.predictor.containers[0].env[1].value", "PROTOCOL must be v1 or v2; got 'grpc'"),
    Invalid("resources-bad-quantity",
            isvc("bad-quantity", {"sklearn": {"resources": {"limits": {"memory": "2 GB"}}}}),
            "spec.predictor.sklearn.resources.limits.memory", "must be a Kubernetes quantity"),
    Invalid("resources-request-above-limit",
            isvc("request-above-limit",
                 {"sklearn": {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}}),
            "spec.predictor.sklearn.resources.requests.cpu",
            "must be less than or equal to resources.limits.cpu (1); got 2"),
    Invalid("alibi-type-invalid",
            isvc("alibi-type", explainer={"alibi": {"type": "Shapley"}}),
            "spec.explainer.alibi.type", 'Unsupported value: "Shapley"', by=SCHEMA),
    Invalid("explainer-config-key-with-space",
            isvc("alibi-config", explainer={"alibi": {"type": "AnchorTabular",
                                                      "config": {"bad key": "1"}}}),
            "spec.explainer.alibi.config", "keys must be non-empty option names without spaces"),
    # ---- component extension fields
    Invalid("canary-traffic-percent-101", isvc("canary-101", sklearn(canaryTrafficPercent=101)),
            "spec.predictor.canaryTrafficPercent", "should be less than or equal to 100",
            by=SCHEMA),
    Invalid("canary-traffic-percent-negative",
            isvc("canary-negative", sklearn(canaryTrafficPercent=-1)),
            "spec.predictor.canaryTrafficPercent", "should be greater than or equal to 0",
            by=SCHEMA),
    Invalid("min-replicas-above-max", isvc("min-above-max", sklearn(minReplicas=5, maxReplicas=3)),
            "spec.predictor.minReplicas",
            "must be less than or equal to maxReplicas (3) unless maxReplicas is 0; got 5"),
    Invalid("min-replicas-negative", isvc("min-negative", sklearn(minReplicas=-2)),
            "spec.predictor.minReplicas", "should be greater than or equal to 0", by=SCHEMA),
    Invalid("max-replicas-negative", isvc("max-negative", sklearn(maxReplicas=-1)),
            "spec.predictor.maxReplicas", "should be greater than or equal to 0", by=SCHEMA),
    Invalid("container-concurrency-negative",
            isvc("concurrency-negative", sklearn(containerConcurrency=-1)),
            "spec.predictor.containerConcurrency", "should be greater than or equal to 0",
            by=SCHEMA),
    Invalid("timeout-zero", isvc("timeout-zero", sklearn(timeout=0)),
            "spec.predictor.timeout", "should be greater than or equal to 1", by=SCHEMA),
    Invalid("replicas-wrong-type", isvc("replicas-string", sklearn(minReplicas="two")),
            "spec.predictor.minReplicas", "must be of type integer", by=SCHEMA),
    Invalid("logger-mode-invalid",
            isvc("logger-mode", sklearn(logger={"mode": "everything"})),
            "spec.predictor.logger.mode", 'Unsupported value: "everything"', by=SCHEMA),
    Invalid("logger-url-invalid",
            isvc("logger-url", sklearn(logger={"mode": "all", "url": "message-dumper.default"})),
            "spec.predictor.logger.url",
            "must be an http:// or https:// URL; got 'message-dumper.default'"),
    Invalid("batcher-max-batch-size-zero",
            isvc("batcher-zero", sklearn(batcher={"maxBatchSize": 0})),
            "spec.predictor.batcher.maxBatchSize", "should be greater than or equal to 1",
            by=SCHEMA),
    Invalid("batcher-on-explainer",
            isvc("batcher-explainer",
                 explainer={"alibi": {"type": "AnchorTabular"}, "batcher": {"maxBatchSize": 4}}),
            "spec.explainer.batcher",
            "batching is supported only on the predictor and the transformer"),
    Invalid("scale-target-zero", isvc("scale-target", sklearn(scaleTarget=0)),
            "spec.predictor.scaleTarget", "should be greater than or equal to 1", by=SCHEMA),
    Invalid("scale-metric-unknown", isvc("scale-metric", sklearn(scaleMetric="latency")),
            "spec.predictor.scaleMetric", 'Unsupported value: "latency"', by=SCHEMA),
    Invalid("scale-metric-cpu-without-hpa", isvc("scale-cpu", sklearn(scaleMetric="cpu")),
            "spec.predictor.scaleMetric",
            "cpu needs the Knative HPA autoscaler: set the annotation "
            "autoscaling.knative.dev/class: hpa.autoscaling.knative.dev"),
    # ---- unknown fields never reach the webhook: kubectl's strict field validation
    Invalid("unknown-field",
            isvc("unknown-field", {"sklearn": {"storageURI": "gs://a/b"}}),
            "spec.predictor.sklearn.storageURI", "unknown field", by=DECODE),
    # ---- every problem is reported, not only the first
    Invalid("several-problems-reported-together",
            isvc("several", {"sklearn": {"storageUri": "ftp://h/m"}, "minReplicas": 4,
                             "maxReplicas": 2, "logger": {"url": "nope"}}),
            "spec.predictor.sklearn.storageUri", "got 'ftp://h/m'",
            also=(("spec.predictor.minReplicas", "unless maxReplicas is 0; got 4"),
                  ("spec.predictor.logger.url", "got 'nope'"))),
]
def _rejection(cluster: Cluster, namespace: str, obj: dict[str, Any]) -> str:
    try:
        out = apply(cluster, namespace, obj)
    except KubectlError as exc:
        return exc.stderr
    pytest.fail(f"kubectl apply admitted an invalid InferenceService: {out}")


def _check_message(case: Invalid, stderr: str) -> None:
    name = case.obj["metadata"]["name"]
    message = " ".join(stderr.split())  # kubectl may wrap nothing, but be safe
    if case.by == WEBHOOK:
        assert f'admission webhook "{VALIDATOR}" denied the request' in message, message
        assert f"InferenceService {name!r} is invalid: " in message, message
    elif case.by == SCHEMA:
        assert f'The InferenceService "{name}" is invalid' in message, message
    else:
        assert "strict decoding error" in message, message
    for path, fragment in ((case.path, case.fragment), *case.also):
        assert path in message, f"field path {path!r} missing from: {message}"
        if case.by == WEBHOOK:
            # the webhook writes "<path>: <message>" for every problem
            assert f"{path}: " in message, message
        assert " ".join(fragment.split()) in message, (
            f"expected {fragment!r} for {path!r} in: {message}")


def test_at_least_thirty_distinct_rules() -> None:
    ids = [case.id for case in INVALID]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 30
    assert sum(case.by == WEBHOOK for case in INVALID) >= 30


@pytest.mark.parametrize("case", INVALID, ids=[case.id for case in INVALID])
def test_invalid_inference_service_is_rejected(
    cluster: Cluster, rules_namespace: str, case: Invalid
) -> None:
    stderr = _rejection(cluster, rules_namespace, case.obj)
    _check_message(case, stderr)
    name = case.obj["metadata"]["name"]
    assert not isvc_exists(cluster, rules_namespace, name), "a rejected object was stored"


# --------------------------------------------------------------------------------------------
# Valid objects are admitted and defaulted


def _expected_defaults(cfg: OperatorConfig) -> dict[str, list[tuple[tuple[Any, ...], Any]]]:
    """Per example: (path under spec, value) pairs the defaulter must have written or kept."""
    p = cfg.predictors
    return {
        "batcher.yaml": [
            (("predictor", "pytorch", "protocolVersion"), "v1"),
            (("predictor", "pytorch", "runtimeVersion"), p.pytorch.v2.default_image_version),
            (("predictor", "batcher", "maxBatchSize"), 32),
        ],
        "canary.yaml": [
            (("predictor", "sklearn", "protocolVersion"), "v1"),
            (("predictor", "sklearn", "runtimeVersion"), p.sklearn.v1.default_image_version),
            (("predictor", "canaryTrafficPercent"), 10),
        ],
        "cluster-local.yaml": [
            (("predictor", "sklearn", "runtimeVersion"), p.sklearn.v1.default_image_version),
        ],
        "custom-predictor.yaml": [
            (("predictor", "containers", 0, "env", 0, "value"), "v1"),
        ],
        "explainer-alibi.yaml": [
            (("predictor", "sklearn", "runtimeVersion"), p.sklearn.v1.default_image_version),
            (("explainer", "alibi", "runtimeVersion"),
             cfg.explainers.alibi.default_image_version),
            (("explainer", "alibi", "type"), "AnchorTabular"),
        ],
        "lightgbm.yaml": [
            (("predictor", "lightgbm", "runtimeVersion"), p.lightgbm.default_image_version),
        ],
        "logger.yaml": [
            (("predictor", "logger", "mode"), "all"),
            (("predictor", "sklearn", "protocolVersion"), "v1"),
        ],
        "onnx.yaml": [
            (("predictor", "onnx", "runtimeVersion"), p.onnx.default_image_version),
        ],
        "paddle.yaml": [
            (("predictor", "paddle", "runtimeVersion"), p.paddle.default_image_version),
        ],
        "pmml.yaml": [
            (("predictor", "pmml", "runtimeVersion"), p.pmml.default_image_version),
        ],
        "pytorch-model-class.yaml": [
            (("predictor", "pytorch", "protocolVersion"), "v1"),
            (("predictor", "pytorch", "runtimeVersion"), p.pytorch.v1.default_image_version),
        ],
        "pytorch.yaml": [
            (("predictor", "pytorch", "protocolVersion"), "v1"),
            (("predictor", "pytorch", "runtimeVersion"), p.pytorch.v2.default_image_version),
        ],
        "sklearn-v2.yaml": [
            (("predictor", "sklearn", "protocolVersion"), "v2"),
            (("predictor", "sklearn", "runtimeVersion"), p.sklearn.v2.default_image_version),
        ],
        "sklearn.yaml": [
            (("predictor", "sklearn", "protocolVersion"), "v1"),
            (("predictor", "sklearn", "runtimeVersion"), p.sklearn.v1.default_image_version),
        ],
        "tensorflow.yaml": [
            (("predictor", "tensorflow", "runtimeVersion"), p.tensorflow.default_image_version),
        ],
        "transformer.yaml": [
            (("predictor", "pytorch", "runtimeVersion"), p.pytorch.v2.default_image_version),
        ],
        "triton.yaml": [
            (("predictor", "triton", "runtimeVersion"), p.triton.default_image_version),
        ],
        "xgboost.yaml": [
            (("predictor", "xgboost", "protocolVersion"), "v1"),
            (("predictor", "xgboost", "runtimeVersion"), p.xgboost.v1.default_image_version),
        ],
    }


NO_PROTOCOL_DEFAULT = ("tensorflow", "onnx", "pmml", "lightgbm", "paddle", "triton")
FRAMEWORK_FIELDS = ("sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "pmml",
                    "lightgbm", "paddle", "alibi", "aix", "art")


def _at(obj: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def _implementation_containers(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(component, implementation, container) of every component in a stored spec."""
    found = []
    for component in ("predictor", "transformer", "explainer"):
        comp = spec.get(component)
        if comp is None:
            continue
        for name in FRAMEWORK_FIELDS:
            if name in comp:
                found.append((component, name, comp[name]))
        if comp.get("containers"):
            found.append((component, "containers", comp["containers"][0]))
    return found


def _check_defaulted(original: dict[str, Any], stored: dict[str, Any],
                     cfg: OperatorConfig) -> None:
    spec = stored["spec"]
    user_spec = copy.deepcopy(original["spec"])
    for _, _, container in _implementation_containers(user_spec):
        container.pop("name", None)  # the defaulter always names the model container
    assert is_subset(user_spec, spec), (
        f"user fields were changed:\n{json.dumps(original['spec'], indent=1)}\n"
        f"stored:\n{json.dumps(spec, indent=1)}")
    containers = _implementation_containers(spec)
    assert containers, spec
    defaults = cfg.inference_service.resource
    for component, impl, container in containers:
        where = f"spec.{component}.{impl}"
        assert container.get("name") == MODEL_CONTAINER, f"{where}: {container}"
        original_container = _implementation_containers(original["spec"])
        user = next(c for comp, i, c in original_container if (comp, i) == (component, impl))
        user_resources = user.get("resources") or {}
        resources = container.get("resources") or {}
        for kind, default_cpu, default_memory in (
            ("requests", defaults.cpu_request, defaults.memory_request),
            ("limits", defaults.cpu_limit, defaults.memory_limit),
        ):
            values = resources.get(kind) or {}
            given = user_resources.get(kind) or {}
            assert values.get("cpu") == given.get("cpu", default_cpu), f"{where} {kind}: {values}"
            assert values.get("memory") == given.get("memory", default_memory), (
                f"{where} {kind}: {values}")
        if impl in FRAMEWORK_FIELDS:
            assert container.get("runtimeVersion"), f"{where}: no runtimeVersion: {container}"
        if impl in ("sklearn", "xgboost", "pytorch"):
            assert container.get("protocolVersion") in ("v1", "v2"), container
        if impl in NO_PROTOCOL_DEFAULT and "protocolVersion" not in user:
            assert "protocolVersion" not in container, f"{where}: {container}"
    for component in ("predictor", "transformer", "explainer"):
        logger = (spec.get(component) or {}).get("logger")
        if logger is not None:
            assert logger.get("mode") in ("all", "request", "response"), logger


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_is_admitted_with_defaults(
    cluster: Cluster, namespace: str, operator: OperatorProcess | None, path: Path
) -> None:
    original = yaml.safe_load(path.read_text())
    apply(cluster, namespace, path.read_text())
    stored = get_isvc(cluster, namespace, original["metadata"]["name"])
    cfg = current_config(cluster, operator_namespace(operator))
    _check_defaulted(original, stored, cfg)
    for spec_path, value in _expected_defaults(cfg)[path.name]:
        assert _at(stored["spec"], spec_path) == value, (spec_path, stored["spec"])
    # Applying the same file again changes nothing: the defaulter is idempotent. (For custom
    # containers kubectl still sends a patch, since a JSON merge patch replaces the whole
    # containers list; the defaulter then restores the same object, so no new generation.)
    generation = stored["metadata"]["generation"]
    apply(cluster, namespace, path.read_text())
    again = get_isvc(cluster, namespace, original["metadata"]["name"])
    assert again["metadata"]["generation"] == generation
    assert again["spec"] == stored["spec"]


def test_every_example_has_expectations() -> None:
    assert {p.name for p in EXAMPLES} == set(_expected_defaults(OperatorConfig()))


VALID_EXTRA: list[tuple[str, dict[str, Any], list[tuple[tuple[Any, ...], Callable[
    [OperatorConfig], Any]]]]] = [
    ("logger-without-mode", isvc("logger-no-mode", sklearn(logger={"url": "http://sink.ns/"})),
     [(("predictor", "logger", "mode"), lambda cfg: "all"),
      (("predictor", "logger", "url"), lambda cfg: "http://sink.ns/")]),
    ("tensorflow-gpu", isvc("tf-gpu", {"tensorflow": {"storageUri": "gs://b/m",
                                                      "resources": GPU}}),
     [(("predictor", "tensorflow", "runtimeVersion"),
       lambda cfg: cfg.predictors.tensorflow.default_gpu_image_version)]),
    ("pytorch-gpu", isvc("pt-gpu", {"pytorch": {"storageUri": "gs://b/m", "resources": GPU}}),
     [(("predictor", "pytorch", "runtimeVersion"),
       lambda cfg: cfg.predictors.pytorch.v2.default_gpu_image_version)]),
    ("xgboost-v2", isvc("xgb-v2", {"xgboost": {"storageUri": "gs://b/m",
                                               "protocolVersion": "v2"}}),
     [(("predictor", "xgboost", "runtimeVersion"),
       lambda cfg: cfg.predictors.xgboost.v2.default_image_version)]),
    ("custom-transformer-named", isvc(
        "named-transformer", transformer={"containers": [{"name": "mine", "image": "t:1"}]}),
     [(("transformer", "containers", 0, "name"), lambda cfg: MODEL_CONTAINER)]),
    ("name-at-predictor-limit", isvc("p" * 39), []),
    ("name-at-transformer-limit",
     isvc("q" * 37, transformer={"containers": [{"image": "example/t:1"}]}), []),
    ("name-at-tag-routing-limit", isvc("r" * 38, annotations={TAG_ROUTING: "true"}), []),
    ("limit-only-below-default-request",
     isvc("small-limit", {"sklearn": {"storageUri": "gs://b/m",
                                      "resources": {"limits": {"memory": "512Mi"}}}}),
     [(("predictor", "sklearn", "resources", "requests", "memory"), lambda cfg: "512Mi")]),
    ("min-replicas-above-unbounded-max", isvc("unbounded", sklearn(minReplicas=3, maxReplicas=0)),
     []),
    ("scale-metric-cpu-with-hpa",
     isvc("hpa", sklearn(scaleMetric="cpu", scaleTarget=80),
          annotations={"autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev"}), []),
    ("azure-blob-storage-uri",
     isvc("azure", {"sklearn": {"storageUri": "https://acct.blob.core.windows.net/c/m"}}), []),
    ("pvc-storage-uri-and-local-path",
     isvc("pvc", {"sklearn": {"storageUri": "pvc://claim/models/m"}},
          explainer={"alibi": {"type": "AnchorTabular", "storageUri": "/mnt/local/explainer"}}),
     []),
]


@pytest.mark.parametrize("case", VALID_EXTRA, ids=[c[0] for c in VALID_EXTRA])
def test_valid_inference_service_is_admitted(
    cluster: Cluster, namespace: str, operator: OperatorProcess | None,
    case: tuple[str, dict[str, Any], list[tuple[tuple[Any, ...], Callable[[OperatorConfig], Any]]]],
) -> None:
    _, obj, expectations = case
    apply(cluster, namespace, obj)
    stored = get_isvc(cluster, namespace, obj["metadata"]["name"])
    cfg = current_config(cluster, operator_namespace(operator))
    for spec_path, value in expectations:
        assert _at(stored["spec"], spec_path) == value(cfg), (spec_path, stored["spec"])
    if case[0] != "limit-only-below-default-request":
        _check_defaulted(obj, stored, cfg)
    else:
        res = stored["spec"]["predictor"]["sklearn"]["resources"]
        assert res["limits"]["memory"] == "512Mi"
        assert res["requests"]["cpu"] == cfg.inference_service.resource.cpu_request


# --------------------------------------------------------------------------------------------
# Updates


BREAKING_UPDATES = [
    ("webhook-rule", lambda spec: spec["predictor"].update(minReplicas=5, maxReplicas=2),
     "spec.predictor.minReplicas", "denied the request"),
    ("framework-rule", lambda spec: spec["predictor"]["sklearn"].update(
        storageUri="ftp://host/model"), "spec.predictor.sklearn.storageUri", "denied the request"),
    ("second-implementation", lambda spec: spec["predictor"].update(
        xgboost={"storageUri": "gs://b/m"}), "spec.predictor", "found 2: sklearn, xgboost"),
    ("schema-rule", lambda spec: spec["predictor"].update(canaryTrafficPercent=150),
     "spec.predictor.canaryTrafficPercent", "should be less than or equal to 100"),
]


@pytest.mark.parametrize("change", BREAKING_UPDATES, ids=[c[0] for c in BREAKING_UPDATES])
def test_breaking_update_is_rejected_and_object_unchanged(
    cluster: Cluster, namespace: str, change: tuple[str, Any, str, str]
) -> None:
    _, mutate, path, fragment = change
    obj = yaml.safe_load((ROOT / "examples" / "sklearn.yaml").read_text())
    name = obj["metadata"]["name"]
    apply(cluster, namespace, obj)
    before = get_isvc(cluster, namespace, name)

    broken = copy.deepcopy(obj)
    mutate(broken["spec"])
    with pytest.raises(KubectlError) as failure:
        apply(cluster, namespace, broken)
    assert path in failure.value.stderr and fragment in failure.value.stderr, (
        failure.value.stderr)

    after = get_isvc(cluster, namespace, name)
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["metadata"].get("annotations") == before["metadata"].get("annotations")

    # A valid update still goes through (and is defaulted).
    fixed = copy.deepcopy(obj)
    fixed["spec"]["predictor"]["minReplicas"] = 2
    apply(cluster, namespace, fixed)
    updated = get_isvc(cluster, namespace, name)
    assert updated["spec"]["predictor"]["minReplicas"] == 2
    assert updated["spec"]["predictor"]["sklearn"]["name"] == MODEL_CONTAINER
    assert updated["metadata"]["generation"] == before["metadata"]["generation"] + 1


def test_breaking_patch_is_rejected(cluster: Cluster, namespace: str) -> None:
    """Not only kubectl apply: a plain merge patch goes through the validator too."""
    apply(cluster, namespace, isvc("patched"))
    before = get_isvc(cluster, namespace, "patched")
    with pytest.raises(KubectlError) as failure:
        cluster.kubectl("patch", "inferenceservice", "patched", "-n", namespace, "--type=merge",
                        "-p", json.dumps({"spec": {"predictor": {
                            "pytorch": {"storageUri": "gs://b/m"}}}}))
    assert "spec.predictor: exactly one of" in failure.value.stderr, failure.value.stderr
    assert get_isvc(cluster, namespace, "patched")["spec"] == before["spec"]


# --------------------------------------------------------------------------------------------
# Deletion


def test_delete_works_with_webhooks_registered(cluster: Cluster, namespace: str) -> None:
    hooks = cluster.get_json("validatingwebhookconfiguration",
                             "inferenceservice.serving.kubeflow.org")
    operations = {op for hook in hooks["webhooks"] for rule in hook["rules"]
                  for op in rule["operations"]}
    assert "DELETE" not in operations and "*" not in operations, operations

    for example in ("sklearn.yaml", "transformer.yaml", "explainer-alibi.yaml"):
        apply(cluster, namespace, (ROOT / "examples" / example).read_text())
    names = cluster.kubectl("get", "isvc", "-n", namespace, "-o", "name").split()
    assert len(names) == 3
    out = cluster.kubectl("delete", "-n", namespace, "-f", str(ROOT / "examples" / "sklearn.yaml"))
    assert "deleted" in out
    assert not isvc_exists(cluster, namespace, "sklearn-iris")
    cluster.kubectl("delete", "isvc", "--all", "-n", namespace, "--timeout=60s")
    assert cluster.kubectl("get", "isvc", "-n", namespace, "-o", "name").strip() == ""


def _dry_run_create(cluster: Cluster, namespace: str, obj: dict[str, Any]) -> str | None:
    """None when a server-side dry run admits ``obj``, else the rejection message."""
    try:
        cluster.kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-",
                        input=yaml.safe_dump(obj))
    except KubectlError as exc:
        return exc.stderr
    return None


def test_delete_of_object_that_is_now_invalid(
    cluster: Cluster, namespace: str, operator: OperatorProcess | None
) -> None:
    """Tighten the config so a stored object breaks a rule; deleting it must still work."""
    op_ns = operator_namespace(operator)
    annotations = {SI + "memory-request": "500Mi"}
    stored_obj = isvc("now-invalid", annotations=annotations)
    apply(cluster, namespace, stored_obj)
    probe = isvc("probe", annotations=annotations)
    assert _dry_run_create(cluster, namespace, probe) is None

    raw = cluster.kubectl("get", "configmap", CONFIGMAP_NAME, "-n", op_ns,
                          "--ignore-not-found", "-o", "json")
    original = json.loads(raw) if raw.strip() else None
    base_data = dict(original["data"]) if original else OperatorConfig().to_configmap_data()
    storage = json.loads(base_data.get("storageInitializer", "{}"))
    storage["memoryLimit"] = "100Mi"
    storage["memoryRequest"] = "100Mi"
    tightened = {**base_data, "storageInitializer": json.dumps(storage)}
    configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": CONFIGMAP_NAME, "namespace": op_ns}, "data": tightened}
    try:
        cluster.kubectl("apply", "-f", "-", input=json.dumps(configmap))
        rejection = wait_for(lambda: _dry_run_create(cluster, namespace, probe), timeout=30,
                             message="the tightened config to take effect")
        assert f"metadata.annotations[{SI}memory-request]" in rejection, rejection

        # The stored object is now invalid: even a label change on it is refused ...
        with pytest.raises(KubectlError) as failure:
            cluster.kubectl("label", "isvc", "now-invalid", "-n", namespace, "touched=yes")
        assert "memory request must not exceed its memory limit" in failure.value.stderr

        # ... but deleting it works.
        out = cluster.kubectl("delete", "isvc", "now-invalid", "-n", namespace,
                              "--timeout=60s")
        assert "deleted" in out
        assert not isvc_exists(cluster, namespace, "now-invalid")
    finally:
        if original is None:
            configmap["data"] = OperatorConfig().to_configmap_data()
            cluster.kubectl("apply", "-f", "-", input=json.dumps(configmap))
        else:
            for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
                original["metadata"].pop(key, None)
            cluster.kubectl("replace", "-f", "-", input=json.dumps(original))
        wait_for(lambda: _dry_run_create(cluster, namespace, probe) is None, timeout=30,
                 message="the original config to be back in effect")
        if original is None:
            cluster.kubectl("delete", "configmap", CONFIGMAP_NAME, "-n", op_ns,
                            "--ignore-not-found")
            time.sleep(0.5)  # the operator keeps the last good (default) config
