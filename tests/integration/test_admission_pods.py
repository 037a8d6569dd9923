"""The pod mutating webhook (issue 5) against a real kube-apiserver and the real operator.

Pods are created directly through the API in the test namespace; no kubelet runs, so they stay
Pending, which is all these tests need: what the apiserver stores is what the webhook made of
the pod. The apiserver adds its own defaults to pods (``terminationMessagePath``,
``imagePullPolicy``, probe periods, ``defaultMode`` of secret volumes ...), so the checks compare
the fields the webhook controls, exactly, and the rest as subsets.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kfserving_operator.api.config import CONFIGMAP_NAME, OperatorConfig, parse_operator_config
from tests.support.cluster import Cluster, KubectlError
from tests.support.operator import OperatorProcess

ISVC_LABEL = "serving.kubeflow.org/inferenceservice"
SOURCE_URI = "internal.serving.kubeflow.org/storage-initializer-sourceuri"
LOGGER = "internal.serving.kubeflow.org/logger"
LOGGER_MODE = "internal.serving.kubeflow.org/logger-mode"
LOGGER_URL = "internal.serving.kubeflow.org/logger-sink-url"
BATCHER = "internal.serving.kubeflow.org/batcher"
BATCH_SIZE = "internal.serving.kubeflow.org/batcher-max-batchsize"
BATCH_LATENCY = "internal.serving.kubeflow.org/batcher-max-latency"
BATCH_TIMEOUT = "internal.serving.kubeflow.org/batcher-timeout"
SI = "serving.kubeflow.org/storage-initializer-"
POD_MUTATOR = "inferenceservice.kfserving-webhook-server.pod-mutator"

MODEL = "kfserving-container"
PROVISION = "kfserving-provision-location"
PVC_VOLUME = "kfserving-pvc-source"
MOUNT = "/mnt/models"
PROVISION_VOLUME = {"name": PROVISION, "emptyDir": {}}
INIT_MOUNT = {"name": PROVISION, "mountPath": MOUNT}
USER_MOUNT = {"name": PROVISION, "mountPath": MOUNT, "readOnly": True}
PVC_MOUNT = {"name": PVC_VOLUME, "mountPath": "/mnt/pvc", "readOnly": True}

pytestmark = pytest.mark.usefixtures("operator")


# --------------------------------------------------------------------------------------------
# Helpers


def model_pod(
    name: str,
    uri: str | None = None,
    *,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    service_account: str | None = None,
    extra_containers: list[dict[str, Any]] | None = None,
    model_container: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A pod as a Knative revision of an InferenceService would create it."""
    all_annotations = dict(annotations or {})
    if uri is not None:
        all_annotations[SOURCE_URI] = uri
    container = {"name": MODEL, "image": "example.com/model-server:1",
                 "ports": [{"containerPort": 8080}]}
    container.update(model_container or {})
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {ISVC_LABEL: "x", "component": "predictor"} if labels is None else labels,
            "annotations": all_annotations,
        },
        "spec": {"containers": [container, *(extra_containers or [])]},
    }
    if service_account:
        pod["spec"]["serviceAccountName"] = service_account
    return pod


def create_pod(cluster: Cluster, namespace: str, pod: dict[str, Any]) -> dict[str, Any]:
    out = cluster.kubectl("create", "-n", namespace, "-f", "-", "-o", "json",
                          input=json.dumps(pod))
    stored: dict[str, Any] = json.loads(out)
    return stored


def container(pod: dict[str, Any], name: str, key: str = "containers") -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        c for c in pod["spec"].get(key) or [] if c["name"] == name]
    assert len(found) == 1, f"expected one {key} entry named {name!r}: {pod['spec'].get(key)}"
    return found[0]


def names(items: list[dict[str, Any]] | None) -> list[str]:
    return [item["name"] for item in items or []]


def is_subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and is_subset(value, actual[key]) for key, value in expected.items())
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(expected) == len(actual)
                and all(is_subset(e, a) for e, a in zip(expected, actual, strict=True)))
    return bool(expected == actual)


def operator_namespace(operator: OperatorProcess | None) -> str:
    return operator.namespace if operator is not None else "kfserving-system"


@pytest.fixture
def config(cluster: Cluster, operator: OperatorProcess | None) -> OperatorConfig:
    """The config the operator runs with: its ConfigMap when there is one, else the defaults."""
    out = cluster.kubectl("get", "configmap", CONFIGMAP_NAME, "-n", operator_namespace(operator),
                          "--ignore-not-found", "-o", "json")
    if not out.strip():
        return OperatorConfig()
    return parse_operator_config(json.loads(out).get("data") or {}).config


@pytest.fixture
def system_pods(cluster: Cluster, operator: OperatorProcess | None) -> Iterator[
        tuple[str, list[str]]]:
    """The operator namespace, and a list to register pods created there (deleted after)."""
    namespace = operator_namespace(operator)
    created: list[str] = []
    yield namespace, created
    for name in created:
        cluster.kubectl("delete", "pod", name, "-n", namespace, "--ignore-not-found",
                        "--wait=false", check=False)


def strip_server_fields(pod: dict[str, Any], name: str) -> dict[str, Any]:
    clean = copy.deepcopy(pod)
    clean.pop("status", None)
    metadata = clean["metadata"]
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation",
                "namespace"):
        metadata.pop(key, None)
    metadata["name"] = name
    return clean


def denial(cluster: Cluster, namespace: str, pod: dict[str, Any]) -> str:
    try:
        stored = create_pod(cluster, namespace, pod)
    except KubectlError as exc:
        return " ".join(exc.stderr.split())
    pytest.fail(f"pod was admitted: {json.dumps(stored['spec'], indent=1)}")


# --------------------------------------------------------------------------------------------
# Storage initializer, per URI kind


URIS = [
    ("gs", "gs://kfserving-samples/models/sklearn/iris", None),
    ("s3", "s3://models/sklearn/iris", None),
    ("pvc", "pvc://model-claim/models/sklearn/iris", "/mnt/pvc/models/sklearn/iris"),
    ("http", "http://models.example.com/iris.tar.gz", None),
    ("https", "https://models.example.com/iris.tar.gz", None),
    ("azure-blob", "https://acct.blob.core.windows.net/c/m", None),
    ("file", "file:///data/models/iris", None),
    ("hdfs", "hdfs://namenode:9000/models/iris", None),
    ("local-path", "/data/models/iris", None),
]


@pytest.mark.parametrize("kind,uri,download", URIS, ids=[u[0] for u in URIS])
def test_storage_initializer_injected_for_each_uri_kind(
    cluster: Cluster, namespace: str, config: OperatorConfig, kind: str, uri: str,
    download: str | None,
) -> None:
    sidecar = {"name": "sidecar", "image": "example.com/sidecar:1"}
    pod = model_pod("model", uri, extra_containers=[sidecar])
    stored = create_pod(cluster, namespace, pod)
    spec = stored["spec"]

    assert names(spec.get("initContainers")) == ["storage-initializer"]
    init = spec["initContainers"][0]
    assert init["image"] == config.storage_initializer.image
    assert init["args"] == [download or uri, MOUNT]
    assert init["resources"] == config.storage_initializer.requirements()
    assert init["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert "env" not in init  # no ServiceAccount secrets in a fresh namespace
    assert "securityContext" not in init

    user = container(stored, MODEL)
    if kind == "pvc":
        assert spec["volumes"] == [
            PROVISION_VOLUME,
            {"name": PVC_VOLUME,
             "persistentVolumeClaim": {"claimName": "model-claim", "readOnly": True}},
        ]
        assert init["volumeMounts"] == [INIT_MOUNT, PVC_MOUNT]
        assert user["volumeMounts"] == [USER_MOUNT, PVC_MOUNT]
    else:
        assert spec["volumes"] == [PROVISION_VOLUME]
        assert init["volumeMounts"] == [INIT_MOUNT]
        assert user["volumeMounts"] == [USER_MOUNT]

    # Nothing else changed: the model container keeps its own fields, the sidecar is untouched,
    # no agent was added.
    assert names(spec["containers"]) == [MODEL, "sidecar"]
    assert user["image"] == pod["spec"]["containers"][0]["image"]
    assert user["ports"][0]["containerPort"] == 8080
    assert "env" not in user and "volumeMounts" not in container(stored, "sidecar")
    assert stored["metadata"]["annotations"] == pod["metadata"]["annotations"]
    assert stored["metadata"]["labels"] == pod["metadata"]["labels"]
    assert "nodeSelector" not in spec


def test_storage_uri_env_is_rewritten_and_security_context_copied(
    cluster: Cluster, namespace: str
) -> None:
    security = {"runAsUser": 1000, "runAsNonRoot": True, "allowPrivilegeEscalation": False}
    pod = model_pod("model", "s3://bucket/m", model_container={
        "env": [{"name": "STORAGE_URI", "value": "s3://bucket/m"},
                {"name": "OTHER", "value": "s3://bucket/m"}],
        "securityContext": security,
    })
    stored = create_pod(cluster, namespace, pod)
    user = container(stored, MODEL)
    assert user["env"] == [{"name": "STORAGE_URI", "value": MOUNT},
                           {"name": "OTHER", "value": "s3://bucket/m"}]
    init = container(stored, "storage-initializer", "initContainers")
    assert init["securityContext"] == security
    assert user["securityContext"] == security


def test_storage_initializer_resources_from_pod_annotations(
    cluster: Cluster, namespace: str, config: OperatorConfig
) -> None:
    pod = model_pod("model", "gs://b/m", annotations={
        SI + "cpu-limit": "2", SI + "memory-request": "2Gi", SI + "memory-limit": "4Gi"})
    stored = create_pod(cluster, namespace, pod)
    init = container(stored, "storage-initializer", "initContainers")
    assert init["resources"] == {
        "requests": {"cpu": config.storage_initializer.cpu_request, "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }


def test_existing_storage_initializer_is_left_alone(cluster: Cluster, namespace: str) -> None:
    mine = {"name": "storage-initializer", "image": "example.com/my-initializer:1",
            "args": ["custom"]}
    pod = model_pod("model", "gs://b/m")
    pod["spec"]["initContainers"] = [mine]
    stored = create_pod(cluster, namespace, pod)
    init = container(stored, "storage-initializer", "initContainers")
    assert init["image"] == mine["image"] and init["args"] == ["custom"]
    assert len(stored["spec"]["initContainers"]) == 1
    assert "volumes" not in stored["spec"]
    assert "volumeMounts" not in container(stored, MODEL)


def test_gke_accelerator_node_selector(cluster: Cluster, namespace: str) -> None:
    pod = model_pod("gpu", annotations={"serving.kubeflow.org/gke-accelerator": "nvidia-tesla-t4"},
                    model_container={"resources": {"limits": {"nvidia.com/gpu": "1"}}})
    stored = create_pod(cluster, namespace, pod)
    assert stored["spec"]["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert "initContainers" not in stored["spec"]

    no_gpu = model_pod("no-gpu", annotations={
        "serving.kubeflow.org/gke-accelerator": "nvidia-tesla-t4"})
    assert "nodeSelector" not in create_pod(cluster, namespace, no_gpu)["spec"]


# --------------------------------------------------------------------------------------------
# Credentials from the pod's ServiceAccount


ACCESS_KEY_ID = "AKIA-test-access-key-0123"
SECRET_KEY = "s3cr3t-value-that-must-not-leak-9f8e"
GCS_KEY_JSON = '{"type": "service_account", "private_key": "gcs-private-key-must-not-leak"}'
AZ_SECRET = "azure-client-secret-must-not-leak-77"


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _ref(env: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


CREDENTIAL_CASES: dict[str, dict[str, Any]] = {
    "s3": {
        "uri": "s3://bucket/models/iris",
        "secret": {
            "metadata": {"name": "s3-creds", "annotations": {
                "serving.kubeflow.org/s3-endpoint": "minio.minio-ns.svc:9000",
                "serving.kubeflow.org/s3-usehttps": "0",
                "serving.kubeflow.org/s3-region": "eu-west-1",
                "serving.kubeflow.org/s3-verifyssl": "0",
            }},
            "data": {"AWS_ACCESS_KEY_ID": _b64(ACCESS_KEY_ID),
                     "AWS_SECRET_ACCESS_KEY": _b64(SECRET_KEY)},
        },
        "env": [
            _ref("AWS_ACCESS_KEY_ID", "s3-creds", "AWS_ACCESS_KEY_ID"),
            _ref("AWS_SECRET_ACCESS_KEY", "s3-creds", "AWS_SECRET_ACCESS_KEY"),
            {"name": "S3_ENDPOINT", "value": "minio.minio-ns.svc:9000"},
            {"name": "AWS_ENDPOINT_URL", "value": "http://minio.minio-ns.svc:9000"},
            {"name": "S3_USE_HTTPS", "value": "0"},
            {"name": "AWS_REGION", "value": "eu-west-1"},
            {"name": "AWS_DEFAULT_REGION", "value": "eu-west-1"},
            {"name": "S3_VERIFY_SSL", "value": "0"},
        ],
        "volumes": [],
        "mounts": [],
        "values": [ACCESS_KEY_ID, SECRET_KEY],
    },
    "s3-https-endpoint": {
        "uri": "s3://bucket/models/iris",
        "secret": {
            "metadata": {"name": "s3-https", "annotations": {
                "serving.kubeflow.org/s3-endpoint": "s3.example.com"}},
            "data": {"AWS_ACCESS_KEY_ID": _b64(ACCESS_KEY_ID),
                     "AWS_SECRET_ACCESS_KEY": _b64(SECRET_KEY)},
        },
        "env": [
            _ref("AWS_ACCESS_KEY_ID", "s3-https", "AWS_ACCESS_KEY_ID"),
            _ref("AWS_SECRET_ACCESS_KEY", "s3-https", "AWS_SECRET_ACCESS_KEY"),
            {"name": "S3_ENDPOINT", "value": "s3.example.com"},
            {"name": "AWS_ENDPOINT_URL", "value": "https://s3.example.com"},
        ],
        "volumes": [],
        "mounts": [],
        "values": [ACCESS_KEY_ID, SECRET_KEY],
    },
    "gcs": {
        "uri": "gs://bucket/models/iris",
        "secret": {
            "metadata": {"name": "gcs-creds"},
            "data": {"gcloud-application-credentials.json": _b64(GCS_KEY_JSON)},
        },
        "env": [{"name": "GOOGLE_APPLICATION_CREDENTIALS",
                 "value": "/var/secrets/gcloud-application-credentials.json"}],
        "volumes": [{"name": "user-gcp-sa", "secret": {"secretName": "gcs-creds"}}],
        "mounts": [{"name": "user-gcp-sa", "mountPath": "/var/secrets/", "readOnly": True}],
        "values": [GCS_KEY_JSON, "gcs-private-key-must-not-leak"],
    },
    "azure": {
        "uri": "https://acct.blob.core.windows.net/c/m",
        "secret": {
            "metadata": {"name": "az-creds"},
            "data": {"AZ_SUBSCRIPTION_ID": _b64("sub-0001"), "AZ_TENANT_ID": _b64("tenant-0002"),
                     "AZ_CLIENT_ID": _b64("client-0003"), "AZ_CLIENT_SECRET": _b64(AZ_SECRET)},
        },
        "env": [
            _ref("AZ_SUBSCRIPTION_ID", "az-creds", "AZ_SUBSCRIPTION_ID"),
            _ref("AZ_TENANT_ID", "az-creds", "AZ_TENANT_ID"),
            _ref("AZ_CLIENT_ID", "az-creds", "AZ_CLIENT_ID"),
            _ref("AZ_CLIENT_SECRET", "az-creds", "AZ_CLIENT_SECRET"),
            _ref("AZURE_SUBSCRIPTION_ID", "az-creds", "AZ_SUBSCRIPTION_ID"),
            _ref("AZURE_TENANT_ID", "az-creds", "AZ_TENANT_ID"),
            _ref("AZURE_CLIENT_ID", "az-creds", "AZ_CLIENT_ID"),
            _ref("AZURE_CLIENT_SECRET", "az-creds", "AZ_CLIENT_SECRET"),
        ],
        "volumes": [],
        "mounts": [],
        "values": [AZ_SECRET, "sub-0001", "tenant-0002", "client-0003"],
    },
}


def _create_service_account(cluster: Cluster, namespace: str, name: str,
                            secrets: list[dict[str, Any]]) -> None:
    for secret in secrets:
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", **secret}
        cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(body))
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name},
               "secrets": [{"name": s["metadata"]["name"]} for s in secrets]}
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(account))


@pytest.mark.parametrize("kind", list(CREDENTIAL_CASES))
def test_credentials_from_service_account_secrets(
    cluster: Cluster, namespace: str, operator: OperatorProcess | None, kind: str
) -> None:
    case = CREDENTIAL_CASES[kind]
    unrelated = {"metadata": {"name": "unrelated"}, "data": {"token": _b64("not-a-credential")}}
    _create_service_account(cluster, namespace, "model-sa", [unrelated, case["secret"]])
    stored = create_pod(cluster, namespace,
                        model_pod("model", case["uri"], service_account="model-sa"))

    init = container(stored, "storage-initializer", "initContainers")
    assert init.get("env", []) == case["env"]
    assert init["volumeMounts"] == [INIT_MOUNT, *case["mounts"]]
    assert is_subset([PROVISION_VOLUME, *case["volumes"]], stored["spec"]["volumes"]), (
        stored["spec"]["volumes"])
    user = container(stored, MODEL)
    assert user["volumeMounts"] == [USER_MOUNT]  # credentials go to the initializer only
    assert "env" not in user

    text = json.dumps(stored)
    for value in case["values"]:
        assert value not in text, f"secret value {value!r} copied into the pod"
        assert _b64(value) not in text, f"base64 of secret value {value!r} copied into the pod"
    if operator is not None:
        log = operator.log()
        for value in case["values"]:
            assert value not in log and _b64(value) not in log, "secret value in operator log"


def test_first_secret_of_a_kind_wins(cluster: Cluster, namespace: str) -> None:
    first = copy.deepcopy(CREDENTIAL_CASES["s3"]["secret"])
    second = copy.deepcopy(CREDENTIAL_CASES["s3-https-endpoint"]["secret"])
    _create_service_account(cluster, namespace, "two-s3", [first, second])
    stored = create_pod(cluster, namespace,
                        model_pod("model", "s3://bucket/m", service_account="two-s3"))
    env = container(stored, "storage-initializer", "initContainers")["env"]
    assert env == CREDENTIAL_CASES["s3"]["env"]
    assert "s3-https" not in json.dumps(stored["spec"])


def test_missing_service_account_means_no_credentials(cluster: Cluster, namespace: str) -> None:
    stored = create_pod(cluster, namespace,
                        model_pod("model", "s3://bucket/m", service_account="does-not-exist"))
    init = container(stored, "storage-initializer", "initContainers")
    assert "env" not in init
    assert init["args"] == ["s3://bucket/m", MOUNT]


# --------------------------------------------------------------------------------------------
# Agent sidecar: logger, batcher


def _logger_args(url: str, pod_name: str, mode: str, namespace: str) -> list[str]:
    return ["--log-url", url, "--source-uri", pod_name, "--log-mode", mode,
            "--inference-service", "x", "--namespace", namespace, "--endpoint", "",
            "--component", "predictor"]


AGENT_CASES = [
    ("logger", {LOGGER: "true", LOGGER_MODE: "request", LOGGER_URL: "http://sink.ns.svc/"},
     lambda cfg, ns: _logger_args("http://sink.ns.svc/", "model", "request", ns)),
    ("logger-defaults", {LOGGER: "true"},
     lambda cfg, ns: _logger_args(cfg.logger.default_url, "model", "all", ns)),
    ("batcher", {BATCHER: "true", BATCH_SIZE: "32", BATCH_LATENCY: "5000"},
     lambda cfg, ns: ["--enable-batcher", "--max-batchsize", "32", "--max-latency", "5000"]),
    ("batcher-all-settings",
     {BATCHER: "true", BATCH_SIZE: "8", BATCH_LATENCY: "100", BATCH_TIMEOUT: "60"},
     lambda cfg, ns: ["--enable-batcher", "--max-batchsize", "8", "--max-latency", "100",
                      "--timeout", "60"]),
    ("batcher-and-logger",
     {LOGGER: "true", LOGGER_MODE: "response", LOGGER_URL: "https://sink.example.com/",
      BATCHER: "true", BATCH_SIZE: "4"},
     lambda cfg, ns: ["--enable-batcher", "--max-batchsize", "4",
                      *_logger_args("https://sink.example.com/", "model", "response", ns)]),
]


@pytest.mark.parametrize("case", AGENT_CASES, ids=[c[0] for c in AGENT_CASES])
def test_agent_sidecar_args_in_documented_order(
    cluster: Cluster, namespace: str, config: OperatorConfig, case: tuple[str, Any, Any]
) -> None:
    _, annotations, expected_args = case
    queue_env = [{"name": "SERVING_NAMESPACE", "value": namespace},
                 {"name": "QUEUE_SERVING_PORT", "value": "8012"}]
    queue = {"name": "queue-proxy", "image": "example.com/queue:1", "env": queue_env}
    pod = model_pod("model", "gs://b/m", annotations=annotations, extra_containers=[queue])
    stored = create_pod(cluster, namespace, pod)

    assert names(stored["spec"]["containers"]) == [MODEL, "queue-proxy", "agent"]
    agent = container(stored, "agent")
    assert agent["image"] == config.agent.image
    assert agent["args"] == expected_args(config, namespace)
    assert agent["resources"] == config.agent.requirements()
    assert agent["env"] == queue_env
    assert is_subset({"exec": {"command": ["/ko-app/agent", "--probe-period", "0"]},
                      "timeoutSeconds": 10}, agent["readinessProbe"]), agent["readinessProbe"]
    assert "volumeMounts" not in agent
    # The storage initializer is injected too (no agent puller annotation).
    assert names(stored["spec"].get("initContainers")) == ["storage-initializer"]


def test_agent_without_queue_proxy_is_given_the_model_port_and_probe(
    cluster: Cluster, namespace: str, config: OperatorConfig
) -> None:
    """A raw Deployment's pod: nothing to copy from queue-proxy (podmutation/raw_agent.py)."""
    stored = create_pod(cluster, namespace, model_pod("model", annotations={LOGGER: "true"}))
    agent = container(stored, "agent")
    # SERVING_READINESS_PROBE is there, empty (the apiserver drops the empty value): the model
    # container has no probe for the agent to run.
    assert agent["env"] == [{"name": "SERVING_READINESS_PROBE"}]
    assert agent["args"] == [*_logger_args(config.logger.default_url, "model", "all", namespace),
                             "--component-port", "8080"]
    assert [(p["name"], p["containerPort"]) for p in agent["ports"]] == [("agent-port", 9081)]
    assert "initContainers" not in stored["spec"]


# --------------------------------------------------------------------------------------------
# What is not mutated


def _spec_without_volatile(pod: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(pod["spec"])
    spec.pop("nodeName", None)
    return spec


def test_unlabelled_pod_is_unchanged(
    cluster: Cluster, namespace: str, system_pods: tuple[str, list[str]]
) -> None:
    """Compared with the same pod in the operator namespace, where no webhook ever applies."""
    system_ns, created = system_pods
    pod = model_pod("plain", "gs://b/m", labels={"app": "not-a-model"},
                    annotations={LOGGER: "true", BATCHER: "true"})
    name = f"plain-{uuid.uuid4().hex[:6]}"
    twin = copy.deepcopy(pod)
    twin["metadata"]["name"] = name
    created.append(name)
    reference = create_pod(cluster, system_ns, twin)
    stored = create_pod(cluster, namespace, pod)
    assert _spec_without_volatile(stored) == _spec_without_volatile(reference)
    assert "initContainers" not in stored["spec"]
    assert names(stored["spec"]["containers"]) == [MODEL]
    assert stored["metadata"]["annotations"] == pod["metadata"]["annotations"]


def test_labelled_pod_without_annotations_is_unchanged(
    cluster: Cluster, namespace: str, system_pods: tuple[str, list[str]]
) -> None:
    """In scope of the webhook, but nothing asked for: the webhook returns no patch."""
    system_ns, created = system_pods
    pod = model_pod("labelled", extra_containers=[{"name": "side", "image": "example.com/s:1"}])
    name = f"labelled-{uuid.uuid4().hex[:6]}"
    twin = copy.deepcopy(pod)
    twin["metadata"]["name"] = name
    created.append(name)
    reference = create_pod(cluster, system_ns, twin)
    stored = create_pod(cluster, namespace, pod)
    assert _spec_without_volatile(stored) == _spec_without_volatile(reference)
    assert stored["metadata"]["labels"] == pod["metadata"]["labels"]


def test_labelled_pod_in_operator_namespace_is_not_mutated(
    cluster: Cluster, system_pods: tuple[str, list[str]]
) -> None:
    system_ns, created = system_pods
    name = f"model-{uuid.uuid4().hex[:6]}"
    created.append(name)
    pod = model_pod(name, "gs://b/m", annotations={LOGGER: "true"})
    stored = create_pod(cluster, system_ns, pod)
    assert "initContainers" not in stored["spec"]
    assert names(stored["spec"]["containers"]) == [MODEL]
    assert "volumes" not in stored["spec"]
    # A broken annotation there is not refused either: the webhook is never called.
    bad_name = f"bad-{uuid.uuid4().hex[:6]}"
    created.append(bad_name)
    create_pod(cluster, system_ns, model_pod(bad_name, "ftp://host/m"))


# --------------------------------------------------------------------------------------------
# Idempotence


def test_mutating_a_mutated_pod_again_changes_nothing(cluster: Cluster, namespace: str) -> None:
    secret = CREDENTIAL_CASES["s3"]["secret"]
    _create_service_account(cluster, namespace, "model-sa", [secret])
    queue = {"name": "queue-proxy", "image": "example.com/queue:1",
             "env": [{"name": "A", "value": "1"}]}
    pod = model_pod("first", "pvc://claim/models/m", service_account="model-sa",
                    annotations={LOGGER: "true", BATCHER: "true", BATCH_SIZE: "16"},
                    extra_containers=[queue],
                    model_container={"env": [{"name": "STORAGE_URI",
                                              "value": "pvc://claim/models/m"}]})
    first = create_pod(cluster, namespace, pod)
    assert names(first["spec"]["initContainers"]) == ["storage-initializer"]
    assert names(first["spec"]["containers"]) == [MODEL, "queue-proxy", "agent"]

    again = create_pod(cluster, namespace, strip_server_fields(first, "second"))
    for key in ("containers", "initContainers", "volumes"):
        assert again["spec"][key] == first["spec"][key], key
    assert _spec_without_volatile(again) == _spec_without_volatile(first)


# --------------------------------------------------------------------------------------------
# Refused pods


REFUSED = [
    ("memory-limit-bad-quantity", model_pod("m", "gs://b/m", annotations={
        SI + "memory-limit": "lots"}),
     ["annotation serving.kubeflow.org/storage-initializer-memory-limit has value 'lots'",
      "not a non-negative Kubernetes quantity"]),
    ("cpu-request-negative", model_pod("m", "gs://b/m", annotations={SI + "cpu-request": "-1"}),
     ["annotation serving.kubeflow.org/storage-initializer-cpu-request has value '-1'"]),
    ("request-above-limit", model_pod("m", "gs://b/m", annotations={
        SI + "memory-request": "8Gi", SI + "memory-limit": "2Gi"}),
     ["storage initializer memory request 8Gi", "serving.kubeflow.org/storage-initializer-",
      "is greater than its limit 2Gi"]),
    ("unknown-uri-scheme", model_pod("m", "ftp://host/models/m"),
     [f"annotation {SOURCE_URI}", "has the unsupported scheme 'ftp://'",
      "Allowed storage URIs: gs://"]),
    ("malformed-uri", model_pod("m", "gs:/bucket/m"),
     [f"annotation {SOURCE_URI}", "is malformed; expected gs://"]),
    ("bad-pvc-claim", model_pod("m", "pvc://Bad_Claim/m"),
     [f"annotation {SOURCE_URI}", "not a valid PersistentVolumeClaim name"]),
    ("empty-uri", model_pod("m", ""), [f"annotation {SOURCE_URI}", "the storage URI is empty"]),
    ("no-model-container",
     {**model_pod("m", "gs://b/m"), "spec": {"containers": [{"name": "server", "image": "x"}]}},
     [f"pod has annotation {SOURCE_URI} but no container named 'kfserving-container'"]),
    ("logger-mode-invalid", model_pod("m", annotations={LOGGER: "true", LOGGER_MODE: "bogus"}),
     [f"annotation {LOGGER_MODE} has value 'bogus'", "all, request, response"]),
    ("batcher-size-not-integer",
     model_pod("m", annotations={BATCHER: "true", BATCH_SIZE: "ten"}),
     [f"annotation {BATCH_SIZE} has value 'ten'", "must be a non-negative integer"]),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
def test_malformed_pod_is_refused_with_a_clear_message(
    cluster: Cluster, namespace: str, case: tuple[str, dict[str, Any], list[str]]
) -> None:
    _, pod, fragments = case
    message = denial(cluster, namespace, pod)
    assert f'admission webhook "{POD_MUTATOR}" denied the request' in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"
    assert cluster.kubectl("get", "pods", "-n", namespace, "-o", "name").strip() == ""


def test_pod_webhook_registration_scope(cluster: Cluster, operator: OperatorProcess | None) -> None:
    config = cluster.get_json("mutatingwebhookconfiguration",
                              "inferenceservice.serving.kubeflow.org")
    hook = next(h for h in config["webhooks"] if h["name"] == POD_MUTATOR)
    assert hook["clientConfig"]["url"].endswith("/mutate-pods") or \
        hook["clientConfig"].get("service", {}).get("path") == "/mutate-pods"
    assert hook["rules"][0]["operations"] == ["CREATE"]
    assert hook["rules"][0]["resources"] == ["pods"]
    assert hook["objectSelector"] == {
        "matchExpressions": [{"key": ISVC_LABEL, "operator": "Exists"}]}
    if operator is not None:  # the registration this operator process wrote itself
        excluded = hook["namespaceSelector"]["matchExpressions"][0]
        assert excluded["operator"] == "NotIn"
        assert operator.namespace in excluded["values"]
