"""The pod mutation core: storage initializer, GKE selector, agent sidecar, patch, scope."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from kfserving_operator.api.config import OperatorConfig, parse_operator_config
from kfserving_operator.podmutation import (
    CredentialSources,
    MutationResult,
    PodMutationError,
    credentials_needed,
    is_in_scope,
    mutate_pod,
    pod_patch,
)

ISVC = "serving.kubeflow.org/inferenceservice"
SOURCE_URI = "internal.serving.kubeflow.org/storage-initializer-sourceuri"
AGENT = "internal.serving.kubeflow.org/agent"
LOGGER = "internal.serving.kubeflow.org/logger"
LOGGER_URL = "internal.serving.kubeflow.org/logger-sink-url"
LOGGER_MODE = "internal.serving.kubeflow.org/logger-mode"
BATCHER = "internal.serving.kubeflow.org/batcher"
BATCH_SIZE = "internal.serving.kubeflow.org/batcher-max-batchsize"
BATCH_LATENCY = "internal.serving.kubeflow.org/batcher-max-latency"
BATCH_TIMEOUT = "internal.serving.kubeflow.org/batcher-timeout"
GKE = "serving.kubeflow.org/gke-accelerator"
SI_CPU_REQUEST = "serving.kubeflow.org/storage-initializer-cpu-request"
SI_CPU_LIMIT = "serving.kubeflow.org/storage-initializer-cpu-limit"
SI_MEMORY_REQUEST = "serving.kubeflow.org/storage-initializer-memory-request"
SI_MEMORY_LIMIT = "serving.kubeflow.org/storage-initializer-memory-limit"

CONFIG = OperatorConfig()
NO_CREDENTIALS = CredentialSources()
GOLDEN = Path(__file__).parent / "golden" / "podmutation"

DEFAULT_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "100Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
QUEUE_PROXY_ENV = [
    {"name": "SERVING_NAMESPACE", "value": "default"},
    {"name": "USER_PORT", "value": "9081"},
    {"name": "SERVING_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
]


def make_pod(
    annotations: dict[str, str] | None = None,
    *,
    labels: dict[str, str] | None = None,
    model_container: dict[str, Any] | None = None,
    extra_containers: list[dict[str, Any]] | None = None,
    service_account: str | None = None,
) -> dict[str, Any]:
    """A pod as Knative's Deployment creates it for a predictor revision."""
    container = model_container or {
        "name": "kfserving-container",
        "image": "kserve/sklearnserver:v0.15.2",
        "args": ["--model_name=sklearn-iris", "--model_dir=/mnt/models", "--http_port=8080"],
        "ports": [{"containerPort": 8080, "name": "user-port", "protocol": "TCP"}],
        "resources": {"limits": {"cpu": "1", "memory": "2Gi"}},
    }
    spec: dict[str, Any] = {
        "containers": [
            container,
            {
                "name": "queue-proxy",
                "image": "knative/queue",
                "env": copy.deepcopy(QUEUE_PROXY_ENV),
            },
            *(extra_containers or []),
        ],
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "sklearn-iris-predictor-default-00001-deployment-5d8f7c9b-",
            "namespace": "default",
            "labels": labels
            if labels is not None
            else {ISVC: "sklearn-iris", "component": "predictor", "app": "x"},
            "annotations": dict(annotations or {}),
        },
        "spec": spec,
    }


def mutate(pod: dict[str, Any], **kwargs: Any) -> MutationResult:
    config = kwargs.pop("config", CONFIG)
    credentials = kwargs.pop("credentials", NO_CREDENTIALS)
    return mutate_pod(pod, config, credentials, **kwargs)


def init_container(pod: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod["spec"]["initContainers"]
    assert only["name"] == "storage-initializer"
    return dict(only)


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [c for c in pod["spec"]["containers"] if c["name"] == name]
    assert len(matches) == 1, name
    return dict(matches[0])


# ---------------------------------------------------------------------------------------
# Scope and purity.


def test_out_of_scope_pod_is_returned_unchanged() -> None:
    pod = make_pod({SOURCE_URI: "gs://bucket/model", LOGGER: "true"}, labels={"app": "other"})
    pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "1"
    pod["metadata"]["annotations"][GKE] = "nvidia-tesla-t4"
    before = copy.deepcopy(pod)

    result = mutate(pod)

    assert not is_in_scope(pod)
    assert result.pod == before
    assert json.dumps(result.pod, sort_keys=True) == json.dumps(before, sort_keys=True)
    assert result.pod is not pod
    assert result.notes == ()
    assert pod_patch(pod, result.pod) == []
    assert not credentials_needed(pod)


def test_pod_without_metadata_is_out_of_scope() -> None:
    assert not is_in_scope({})
    assert mutate({"spec": {"containers": "garbage"}}).pod == {"spec": {"containers": "garbage"}}


def test_in_scope_pod_with_nothing_to_do_is_unchanged() -> None:
    pod = make_pod()
    assert is_in_scope(pod)
    assert mutate(pod).pod == pod
    assert not credentials_needed(pod)


def test_input_pod_is_never_modified() -> None:
    pod = make_pod(
        {SOURCE_URI: "pvc://claim/models", LOGGER: "true", BATCHER: "true", GKE: "t4"},
        model_container={
            "name": "kfserving-container",
            "image": "img",
            "env": [{"name": "STORAGE_URI", "value": "pvc://claim/models"}],
            "resources": {"limits": {"nvidia.com/gpu": "1"}},
            "securityContext": {"runAsUser": 1000},
        },
    )
    before = copy.deepcopy(pod)
    result = mutate(pod)
    assert pod == before
    assert result.pod != before
    # The copy shares nothing mutable with the input.
    result.pod["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0
    assert pod["spec"]["containers"][0]["securityContext"]["runAsUser"] == 1000


# ---------------------------------------------------------------------------------------
# Storage initializer.


def test_gs_uri_injects_storage_initializer() -> None:
    pod = make_pod({SOURCE_URI: "gs://kfserving-samples/models/sklearn/iris"})
    result = mutate(pod)

    assert result.pod["spec"]["initContainers"] == [
        {
            "name": "storage-initializer",
            "image": "kserve/storage-initializer:v0.15.2",
            "args": ["gs://kfserving-samples/models/sklearn/iris", "/mnt/models"],
            "resources": DEFAULT_RESOURCES,
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "volumeMounts": [{"name": "kfserving-provision-location", "mountPath": "/mnt/models"}],
        }
    ]
    assert result.pod["spec"]["volumes"] == [
        {"name": "kfserving-provision-location", "emptyDir": {}}
    ]
    model = container(result.pod, "kfserving-container")
    assert model["volumeMounts"] == [
        {"name": "kfserving-provision-location", "mountPath": "/mnt/models", "readOnly": True}
    ]
    # Nothing else changed: same containers, same metadata.
    assert [c["name"] for c in result.pod["spec"]["containers"]] == [
        "kfserving-container",
        "queue-proxy",
    ]
    assert result.pod["metadata"] == pod["metadata"]
    assert container(result.pod, "queue-proxy") == container(pod, "queue-proxy")


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/models/iris",
        "http://models.example.com/iris.joblib",
        "https://models.example.com/iris.joblib",
        "https://account.blob.core.windows.net/container/models/iris",
        "hdfs://namenode:9000/models/iris",
        "webhdfs://namenode:9870/models/iris",
        "file:///mnt/data/iris",
        "/mnt/data/iris",
        "models/iris",
    ],
)
def test_uri_is_passed_to_the_initializer_unchanged(uri: str) -> None:
    result = mutate(make_pod({SOURCE_URI: uri}))
    init = init_container(result.pod)
    assert init["args"] == [uri, "/mnt/models"]
    assert init["volumeMounts"] == [
        {"name": "kfserving-provision-location", "mountPath": "/mnt/models"}
    ]
    assert [v["name"] for v in result.pod["spec"]["volumes"]] == ["kfserving-provision-location"]


def test_pvc_uri_mounts_the_claim_and_rewrites_the_source() -> None:
    result = mutate(make_pod({SOURCE_URI: "pvc://model-store/models/sklearn/iris"}))
    pod = result.pod

    assert pod["spec"]["volumes"] == [
        {"name": "kfserving-provision-location", "emptyDir": {}},
        {
            "name": "kfserving-pvc-source",
            "persistentVolumeClaim": {"claimName": "model-store", "readOnly": True},
        },
    ]
    init = init_container(pod)
    assert init["args"] == ["/mnt/pvc/models/sklearn/iris", "/mnt/models"]
    assert init["volumeMounts"] == [
        {"name": "kfserving-provision-location", "mountPath": "/mnt/models"},
        {"name": "kfserving-pvc-source", "mountPath": "/mnt/pvc", "readOnly": True},
    ]
    assert container(pod, "kfserving-container")["volumeMounts"] == [
        {"name": "kfserving-provision-location", "mountPath": "/mnt/models", "readOnly": True},
        {"name": "kfserving-pvc-source", "mountPath": "/mnt/pvc", "readOnly": True},
    ]
    assert "storage initializer added for pvc URI 'pvc://model-store/models/sklearn/iris'" in (
        result.notes
    )


def test_pvc_uri_without_path_uses_the_claim_root() -> None:
    init = init_container(mutate(make_pod({SOURCE_URI: "pvc://model-store"})).pod)
    assert init["args"] == ["/mnt/pvc/", "/mnt/models"]


def test_storage_uri_env_is_rewritten_and_empty_one_left_alone() -> None:
    pod = make_pod(
        {SOURCE_URI: "s3://bucket/model"},
        model_container={
            "name": "kfserving-container",
            "image": "img",
            "env": [
                {"name": "STORAGE_URI", "value": "s3://bucket/model"},
                {"name": "OTHER", "value": "s3://bucket/model"},
            ],
        },
        extra_containers=[{"name": "side", "env": [{"name": "STORAGE_URI", "value": "x"}]}],
    )
    result = mutate(pod).pod
    assert container(result, "kfserving-container")["env"] == [
        {"name": "STORAGE_URI", "value": "/mnt/models"},
        {"name": "OTHER", "value": "s3://bucket/model"},
    ]
    assert container(result, "side")["env"] == [{"name": "STORAGE_URI", "value": "x"}]

    pod["spec"]["containers"][0]["env"] = [{"name": "STORAGE_URI", "value": ""}]
    assert container(mutate(pod).pod, "kfserving-container")["env"] == [
        {"name": "STORAGE_URI", "value": ""}
    ]


def test_security_context_is_copied_from_the_model_container() -> None:
    context = {"runAsUser": 1000, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    pod = make_pod(
        {SOURCE_URI: "gs://b/m"},
        model_container={"name": "kfserving-container", "image": "i", "securityContext": context},
    )
    assert init_container(mutate(pod).pod)["securityContext"] == context
    assert "securityContext" not in init_container(mutate(make_pod({SOURCE_URI: "gs://b/m"})).pod)


def test_config_image_and_resources_are_used() -> None:
    config = parse_operator_config(
        {
            "storageInitializer": json.dumps(
                {"image": "my/initializer:1", "memoryLimit": "4Gi", "cpuRequest": "250m"}
            )
        }
    ).config
    init = init_container(mutate(make_pod({SOURCE_URI: "gs://b/m"}), config=config).pod)
    assert init["image"] == "my/initializer:1"
    assert init["resources"] == {
        "requests": {"cpu": "250m", "memory": "100Mi"},
        "limits": {"cpu": "1", "memory": "4Gi"},
    }


def test_resource_annotations_override_the_config() -> None:
    pod = make_pod(
        {
            SOURCE_URI: "gs://b/m",
            SI_CPU_REQUEST: "500m",
            SI_CPU_LIMIT: "2",
            SI_MEMORY_REQUEST: "8Gi",
            SI_MEMORY_LIMIT: "16Gi",
        }
    )
    assert init_container(mutate(pod).pod)["resources"] == {
        "requests": {"cpu": "500m", "memory": "8Gi"},
        "limits": {"cpu": "2", "memory": "16Gi"},
    }


def test_one_resource_annotation_overrides_only_its_value() -> None:
    pod = make_pod({SOURCE_URI: "gs://b/m", SI_MEMORY_LIMIT: "20Gi"})
    assert init_container(mutate(pod).pod)["resources"] == {
        "requests": {"cpu": "100m", "memory": "100Mi"},
        "limits": {"cpu": "1", "memory": "20Gi"},
    }


@pytest.mark.parametrize("value", ["lots", "2 GB", "", "-1Gi", "1..5"])
def test_bad_resource_annotation_is_refused(value: str) -> None:
    pod = make_pod({SOURCE_URI: "gs://b/m", SI_MEMORY_LIMIT: value})
    with pytest.raises(PodMutationError) as error:
        mutate(pod)
    message = str(error.value)
    assert SI_MEMORY_LIMIT in message
    assert repr(value) in message
    assert "quantity" in message and "2Gi" in message


def test_request_above_limit_is_refused_with_both_sources_named() -> None:
    pod = make_pod({SOURCE_URI: "gs://b/m", SI_MEMORY_REQUEST: "4Gi"})
    with pytest.raises(PodMutationError) as error:
        mutate(pod)
    message = str(error.value)
    assert "memory request 4Gi" in message
    assert SI_MEMORY_REQUEST in message
    assert "limit 1Gi (from the storageInitializer config)" in message


def test_missing_model_container_is_refused() -> None:
    pod = make_pod(
        {SOURCE_URI: "gs://b/m"}, model_container={"name": "my-server", "image": "custom"}
    )
    with pytest.raises(PodMutationError) as error:
        mutate(pod)
    assert "kfserving-container" in str(error.value)
    assert SOURCE_URI in str(error.value)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("ftp://host/model", "unsupported scheme 'ftp://'"),
        ("hf://meta/llama", "unsupported scheme 'hf://'"),
        ("GS://bucket/model", "lower-case scheme gs://"),
        ("gs:/bucket/model", "expected gs://"),
        ("", "the storage URI is empty"),
        (" gs://bucket/model", "whitespace"),
        ("pvc://", "has no claim name"),
        ("pvc:///models", "has no claim name"),
        ("pvc://Bad_Claim/models", "not a valid PersistentVolumeClaim name"),
        ("pvc://claim/../../etc", "'..'"),
        ("s3://", "has no bucket name"),
        ("https:///path", "has no host"),
        ("file://", "has no path"),
    ],
)
def test_bad_source_uri_is_refused(uri: str, expected: str) -> None:
    with pytest.raises(PodMutationError) as error:
        mutate(make_pod({SOURCE_URI: uri}))
    message = str(error.value)
    assert expected in message
    assert f"annotation {SOURCE_URI}" in message
    assert "Allowed storage URIs: gs://, s3://, pvc://<claim>/<path>" in message


def test_no_storage_initializer_for_multi_model_pods() -> None:
    pod = make_pod({SOURCE_URI: "gs://b/m", AGENT: "true"})
    result = mutate(pod).pod
    assert "initContainers" not in result["spec"]
    assert "kfserving-provision-location" not in json.dumps(result)


def test_existing_storage_initializer_is_left_alone() -> None:
    pod = make_pod({SOURCE_URI: "gs://b/m"})
    pod["spec"]["initContainers"] = [{"name": "storage-initializer", "image": "mine"}]
    assert mutate(pod).pod == pod
    assert not credentials_needed(pod)


def test_conflicting_mount_path_is_refused() -> None:
    pod = make_pod(
        {SOURCE_URI: "gs://b/m"},
        model_container={
            "name": "kfserving-container",
            "image": "i",
            "volumeMounts": [{"name": "mine", "mountPath": "/mnt/models"}],
        },
    )
    with pytest.raises(PodMutationError, match=r"already mounts volume 'mine' at '/mnt/models'"):
        mutate(pod)


def test_conflicting_volume_name_is_refused() -> None:
    pod = make_pod({SOURCE_URI: "gs://b/m"})
    pod["spec"]["volumes"] = [{"name": "kfserving-provision-location", "hostPath": {"path": "/"}}]
    with pytest.raises(PodMutationError, match="volume named 'kfserving-provision-location'"):
        mutate(pod)


def test_malformed_containers_are_refused() -> None:
    pod = make_pod({SOURCE_URI: "gs://b/m"})
    pod["spec"]["containers"] = {"name": "kfserving-container"}
    with pytest.raises(PodMutationError, match=r"spec\.containers must be a list"):
        mutate(pod)


# ---------------------------------------------------------------------------------------
# GKE accelerator.


def gpu_pod(annotations: dict[str, str], gpu: bool = True) -> dict[str, Any]:
    limits: dict[str, str] = {"cpu": "1"}
    if gpu:
        limits["nvidia.com/gpu"] = "1"
    return make_pod(
        annotations,
        model_container={
            "name": "kfserving-container",
            "image": "i",
            "resources": {"limits": limits},
        },
    )


def test_gke_accelerator_sets_the_node_selector() -> None:
    pod = gpu_pod({GKE: "nvidia-tesla-t4"})
    pod["spec"]["nodeSelector"] = {"pool": "gpu"}
    result = mutate(pod).pod
    assert result["spec"]["nodeSelector"] == {
        "pool": "gpu",
        "cloud.google.com/gke-accelerator": "nvidia-tesla-t4",
    }
    assert pod_patch(pod, result) == [
        {
            "op": "add",
            "path": "/spec/nodeSelector/cloud.google.com~1gke-accelerator",
            "value": "nvidia-tesla-t4",
        }
    ]


def test_gke_accelerator_ignored_without_gpu_or_annotation() -> None:
    no_gpu = gpu_pod({GKE: "nvidia-tesla-t4"}, gpu=False)
    assert mutate(no_gpu).pod == no_gpu
    no_annotation = gpu_pod({})
    assert mutate(no_annotation).pod == no_annotation


def test_gke_accelerator_looks_at_every_container() -> None:
    pod = make_pod(
        {GKE: "nvidia-tesla-a100"},
        extra_containers=[{"name": "gpu-side", "resources": {"limits": {"nvidia.com/gpu": 2}}}],
    )
    assert mutate(pod).pod["spec"]["nodeSelector"] == {
        "cloud.google.com/gke-accelerator": "nvidia-tesla-a100"
    }


# ---------------------------------------------------------------------------------------
# Agent sidecar.

AGENT_PROBE = {
    "exec": {"command": ["/ko-app/agent", "--probe-period", "0"]},
    "timeoutSeconds": 10,
}


def test_logger_agent_with_defaults() -> None:
    result = mutate(make_pod({LOGGER: "true"}), namespace="models")
    expected_args = [
        "--log-url", "http://default-broker",
        "--source-uri", "sklearn-iris-predictor-default-00001-deployment-5d8f7c9b-",
        "--log-mode", "all",
        "--inference-service", "sklearn-iris",
        "--namespace", "models",
        "--endpoint", "",
        "--component", "predictor",
    ]  # fmt: skip
    assert result.pod["spec"]["containers"][-1] == {
        "name": "agent",
        "image": "kserve/agent:v0.15.2",
        "args": expected_args,
        "resources": DEFAULT_RESOURCES,
        "env": QUEUE_PROXY_ENV,
        "readinessProbe": AGENT_PROBE,
    }
    assert "ports" not in result.pod["spec"]["containers"][-1]
    # The model container keeps its port.
    assert container(result.pod, "kfserving-container")["ports"][0]["containerPort"] == 8080


def test_logger_agent_with_annotations_and_labels() -> None:
    pod = make_pod(
        {LOGGER: "true", LOGGER_URL: "http://sink.logs:8080", LOGGER_MODE: "request"},
        labels={ISVC: "flowers", "component": "transformer", "endpoint": "canary"},
    )
    pod["metadata"]["name"] = "flowers-abc"
    agent = container(mutate(pod).pod, "agent")
    assert agent["args"] == [
        "--log-url", "http://sink.logs:8080",
        "--source-uri", "flowers-abc",
        "--log-mode", "request",
        "--inference-service", "flowers",
        "--namespace", "default",
        "--endpoint", "canary",
        "--component", "transformer",
    ]  # fmt: skip


def test_logger_default_url_comes_from_config() -> None:
    config = parse_operator_config(
        {"logger": json.dumps({"defaultUrl": "http://broker.events"})}
    ).config
    agent = container(mutate(make_pod({LOGGER: "true"}), config=config).pod, "agent")
    assert agent["args"][:2] == ["--log-url", "http://broker.events"]


def test_batcher_agent_args() -> None:
    pod = make_pod({BATCHER: "true", BATCH_SIZE: "32", BATCH_LATENCY: "500"})
    agent = container(mutate(pod).pod, "agent")
    assert agent["args"] == ["--enable-batcher", "--max-batchsize", "32", "--max-latency", "500"]

    pod["metadata"]["annotations"][BATCH_TIMEOUT] = "60"
    del pod["metadata"]["annotations"][BATCH_SIZE]
    agent = container(mutate(pod).pod, "agent")
    assert agent["args"] == ["--enable-batcher", "--max-latency", "500", "--timeout", "60"]

    only_flag = container(mutate(make_pod({BATCHER: "true"})).pod, "agent")
    assert only_flag["args"] == ["--enable-batcher"]


def test_agent_uses_agent_config_image_and_resources() -> None:
    config = parse_operator_config(
        {"agent": json.dumps({"image": "my/agent:2", "cpuLimit": "2", "memoryRequest": "200Mi"})}
    ).config
    agent = container(mutate(make_pod({BATCHER: "true"}), config=config).pod, "agent")
    assert agent["image"] == "my/agent:2"
    assert agent["resources"] == {
        "requests": {"cpu": "100m", "memory": "200Mi"},
        "limits": {"cpu": "2", "memory": "1Gi"},
    }


def test_puller_batcher_logger_args_in_order_and_volumes() -> None:
    pod = make_pod(
        {
            AGENT: "true",
            "internal.serving.kubeflow.org/configVolumeName": "modelconfig-sklearn-iris-0",
            "internal.serving.kubeflow.org/configMountPath": "/mnt/configs",
            "internal.serving.kubeflow.org/modelDir": "/mnt/models",
            BATCHER: "true",
            BATCH_SIZE: "8",
            LOGGER: "true",
            SOURCE_URI: "gs://ignored/for/mms",
        }
    )
    pod["metadata"]["name"] = "p"
    result = mutate(pod, namespace="ns").pod
    agent = container(result, "agent")
    assert agent["args"] == [
        "--enable-puller", "--config-dir", "/mnt/configs", "--model-dir", "/mnt/models",
        "--enable-batcher", "--max-batchsize", "8",
        "--log-url", "http://default-broker", "--source-uri", "p", "--log-mode", "all",
        "--inference-service", "sklearn-iris", "--namespace", "ns", "--endpoint", "",
        "--component", "predictor",
    ]  # fmt: skip
    assert result["spec"]["volumes"] == [
        {"name": "model-dir", "emptyDir": {}},
        {"name": "model-config", "configMap": {"name": "modelconfig-sklearn-iris-0"}},
    ]
    assert agent["volumeMounts"] == [
        {"name": "model-dir", "mountPath": "/mnt/models"},
        {"name": "model-config", "mountPath": "/mnt/configs"},
    ]
    assert container(result, "kfserving-container")["volumeMounts"] == [
        {"name": "model-dir", "mountPath": "/mnt/models"}
    ]
    assert "initContainers" not in result["spec"]


def test_puller_defaults_without_path_annotations() -> None:
    result = mutate(make_pod({AGENT: "true"})).pod
    agent = container(result, "agent")
    assert agent["args"] == [
        "--enable-puller", "--config-dir", "/mnt/configs", "--model-dir", "/mnt/models",
    ]  # fmt: skip
    assert result["spec"]["volumes"][1] == {
        "name": "model-config",
        "configMap": {"name": "modelconfig-sklearn-iris-0"},
    }


def raw_pod(annotations: dict[str, str], model: dict[str, Any] | None = None) -> dict[str, Any]:
    """A raw Deployment's pod: no queue-proxy."""
    pod = make_pod(annotations, model_container=model)
    pod["spec"]["containers"] = pod["spec"]["containers"][:1]
    return pod


def probe_env(agent: dict[str, Any]) -> Any:
    (env,) = [e for e in agent["env"] if e["name"] == "SERVING_READINESS_PROBE"]
    return json.loads(env["value"]) if env["value"] else ""


def test_raw_agent_forwards_to_the_model_port_and_runs_its_probe() -> None:
    model = {"name": "kfserving-container", "image": "mine", "ports": [{"containerPort": 8500}],
             "readinessProbe": {"tcpSocket": {"port": 8500}, "periodSeconds": 5}}
    result = mutate(raw_pod({LOGGER: "true"}, model))
    agent = container(result.pod, "agent")
    assert agent["args"][-2:] == ["--component-port", "8500"]
    assert probe_env(agent) == {"tcpSocket": {"host": "127.0.0.1", "port": 8500},
                                "periodSeconds": 5}
    assert agent["ports"] == [{"name": "agent-port", "containerPort": 9081, "protocol": "TCP"}]
    assert agent["readinessProbe"] == AGENT_PROBE
    assert "--component-port 8500" in result.notes[-1]


def test_raw_agent_defaults_without_ports_or_probe() -> None:
    model = {"name": "kfserving-container", "image": "mine"}
    agent = container(mutate(raw_pod({BATCHER: "true"}, model)).pod, "agent")
    assert agent["args"] == ["--enable-batcher", "--component-port", "8080"]
    # Present (the agent refuses to start without it) and empty: no probe to run.
    assert probe_env(agent) == ""


@pytest.mark.parametrize(("probe", "expected"), [
    ({"httpGet": {"path": "/v1/models/m", "port": "http"}},
     {"httpGet": {"path": "/v1/models/m", "port": 8080, "host": "127.0.0.1", "scheme": "HTTP"}}),
    ({"httpGet": {"port": "8080", "scheme": "HTTPS"}},
     {"httpGet": {"port": 8080, "host": "127.0.0.1", "scheme": "HTTPS"}}),
    ({"tcpSocket": {"port": "nameless"}}, {"tcpSocket": {"port": 8080, "host": "127.0.0.1"}}),
    ({"exec": {"command": ["true"]}}, ""),
])
def test_raw_agent_probe_forms(probe: dict[str, Any], expected: Any) -> None:
    model = {"name": "kfserving-container", "image": "mine",
             "ports": [{"name": "http", "containerPort": 8080}], "readinessProbe": probe}
    assert probe_env(container(mutate(raw_pod({LOGGER: "true"}, model)).pod, "agent")) == (
        expected)


def test_raw_agent_never_forwards_to_itself() -> None:
    """A template from before the agent's port moved off the model container."""
    model = {"name": "kfserving-container", "image": "mine",
             "ports": [{"containerPort": 9081}]}
    agent = container(mutate(raw_pod({LOGGER: "true"}, model)).pod, "agent")
    assert agent["args"][-2:] == ["--component-port", "8080"]


def test_serverless_agent_is_not_given_raw_fields() -> None:
    agent = container(mutate(make_pod({BATCHER: "true"})).pod, "agent")
    assert "--component-port" not in agent["args"]
    assert agent["env"] == QUEUE_PROXY_ENV
    assert "ports" not in agent


def test_existing_agent_container_is_left_alone() -> None:
    pod = make_pod({LOGGER: "true"}, extra_containers=[{"name": "agent", "image": "mine"}])
    assert mutate(pod).pod == pod


@pytest.mark.parametrize(
    ("annotation", "value"),
    [(BATCH_SIZE, "many"), (BATCH_LATENCY, "-5"), (BATCH_TIMEOUT, "1.5")],
)
def test_bad_batcher_annotation_is_refused(annotation: str, value: str) -> None:
    with pytest.raises(PodMutationError) as error:
        mutate(make_pod({BATCHER: "true", annotation: value}))
    assert annotation in str(error.value)
    assert "non-negative integer" in str(error.value)


def test_bad_logger_mode_is_refused() -> None:
    with pytest.raises(PodMutationError) as error:
        mutate(make_pod({LOGGER: "true", LOGGER_MODE: "everything"}))
    assert LOGGER_MODE in str(error.value)
    assert "all, request, response" in str(error.value)


# ---------------------------------------------------------------------------------------
# Idempotence, patch, golden.

S3_SA: dict[str, Any] = {"metadata": {"name": "sa"}, "secrets": [{"name": "s3"}, {"name": "gcs"}]}
S3_SECRETS: dict[str, dict[str, Any]] = {
    "s3": {
        "metadata": {
            "name": "s3",
            "annotations": {
                "serving.kubeflow.org/s3-endpoint": "minio.minio:9000",
                "serving.kubeflow.org/s3-usehttps": "0",
                "serving.kubeflow.org/s3-region": "eu-west-1",
            },
        },
        "data": {"AWS_ACCESS_KEY_ID": "bWluaW8=", "AWS_SECRET_ACCESS_KEY": "bWluaW8xMjM="},
    },
    "gcs": {"metadata": {"name": "gcs"}, "data": {"gcloud-application-credentials.json": "e30="}},
}
KITCHEN_SINK = make_pod(
    {
        SOURCE_URI: "pvc://model-store/models/iris",
        LOGGER: "true",
        LOGGER_MODE: "response",
        BATCHER: "true",
        BATCH_SIZE: "16",
        BATCH_LATENCY: "100",
        GKE: "nvidia-tesla-t4",
        SI_MEMORY_LIMIT: "4Gi",
    },
    model_container={
        "name": "kfserving-container",
        "image": "kserve/sklearnserver:v0.15.2",
        "ports": [{"containerPort": 9081}],
        "env": [{"name": "STORAGE_URI", "value": "pvc://model-store/models/iris"}],
        "resources": {"limits": {"cpu": "1", "nvidia.com/gpu": "1"}},
        "securityContext": {"runAsNonRoot": True},
    },
    service_account="sa",
)

IDEMPOTENCE_CASES = {
    "gs": make_pod({SOURCE_URI: "gs://b/m"}),
    "pvc": make_pod({SOURCE_URI: "pvc://claim/m"}),
    "logger": make_pod({LOGGER: "true"}),
    "mms": make_pod({AGENT: "true", BATCHER: "true"}),
    "gke": gpu_pod({GKE: "t4"}),
    "kitchen-sink": KITCHEN_SINK,
}


@pytest.mark.parametrize("case", sorted(IDEMPOTENCE_CASES))
def test_mutation_is_idempotent(case: str) -> None:
    pod = IDEMPOTENCE_CASES[case]
    credentials = CredentialSources(S3_SA, S3_SECRETS)
    once = mutate(pod, credentials=credentials).pod
    twice = mutate(once, credentials=credentials).pod
    assert once != pod
    assert twice == once
    assert pod_patch(once, twice) == []


def test_patch_turns_the_original_into_the_mutated_pod() -> None:
    result = mutate(KITCHEN_SINK, credentials=CredentialSources(S3_SA, S3_SECRETS))
    patch = pod_patch(KITCHEN_SINK, result.pod)
    assert patch, "expected a non-empty patch"
    assert all(op["op"] in {"add", "replace", "remove"} for op in patch)
    assert all(op["path"].startswith("/spec/") for op in patch)
    assert jsonpatch.apply_patch(KITCHEN_SINK, patch) == result.pod
    json.dumps(patch)  # serialisable as the AdmissionReview needs it


def test_kitchen_sink_matches_golden() -> None:
    result = mutate(KITCHEN_SINK, credentials=CredentialSources(S3_SA, S3_SECRETS))
    expected = yaml.safe_load((GOLDEN / "kitchen-sink.yaml").read_text())
    assert result.pod == expected["pod"]
    assert list(result.notes) == expected["notes"]


def test_credentials_needed_tells_the_shell_when_to_read_secrets() -> None:
    assert credentials_needed(make_pod({SOURCE_URI: "gs://b/m"}))
    assert credentials_needed(make_pod({LOGGER: "true"}))
    assert not credentials_needed(gpu_pod({GKE: "t4"}))
    assert not credentials_needed(make_pod({SOURCE_URI: "gs://b/m"}, labels={}))
