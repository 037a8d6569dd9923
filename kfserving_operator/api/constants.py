"""Names shared by the API, the builders, the webhooks and the operator.

They are the KFServing v0.6 names (API group ``serving.kubeflow.org``), so clients, pods and
dashboards written for KFServing keep working.
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "serving.kubeflow.org"
VERSION: Final = "v1beta1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "InferenceService"
PLURAL: Final = "inferenceservices"
SINGULAR: Final = "inferenceservice"
SHORT_NAME: Final = "isvc"

KNATIVE_GROUP: Final = "serving.knative.dev"
KNATIVE_VERSION: Final = "v1"
KNATIVE_API_VERSION: Final = f"{KNATIVE_GROUP}/{KNATIVE_VERSION}"
ISTIO_GROUP: Final = "networking.istio.io"
ISTIO_VERSION: Final = "v1beta1"
ISTIO_API_VERSION: Final = f"{ISTIO_GROUP}/{ISTIO_VERSION}"

# Components, in reconcile order.
PREDICTOR: Final = "predictor"
TRANSFORMER: Final = "transformer"
EXPLAINER: Final = "explainer"
COMPONENTS: Final = (PREDICTOR, TRANSFORMER, EXPLAINER)

# Labels on children and pods.
ISVC_LABEL: Final = f"{GROUP}/inferenceservice"
COMPONENT_LABEL: Final = "component"
VISIBILITY_LABEL: Final = "serving.knative.dev/visibility"
VISIBILITY_CLUSTER_LOCAL: Final = "cluster-local"

# User-facing annotations on the InferenceService.
GKE_ACCELERATOR_ANNOTATION: Final = f"{GROUP}/gke-accelerator"
ENABLE_TAG_ROUTING_ANNOTATION: Final = f"{GROUP}/enable-tag-routing"
# Per-InferenceService overrides of the storage initializer's resources (large models need
# more memory than the cluster-wide default). They reach the pod through the revision
# template annotations, where the pod webhook reads them.
STORAGE_INITIALIZER_RESOURCE_ANNOTATIONS: Final = {
    "cpu_request": f"{GROUP}/storage-initializer-cpu-request",
    "cpu_limit": f"{GROUP}/storage-initializer-cpu-limit",
    "memory_request": f"{GROUP}/storage-initializer-memory-request",
    "memory_limit": f"{GROUP}/storage-initializer-memory-limit",
}

# Internal annotations the operator writes on revision templates, read by the pod webhook.
INTERNAL_PREFIX: Final = f"internal.{GROUP}"
STORAGE_INITIALIZER_SOURCE_URI_ANNOTATION: Final = (
    f"{INTERNAL_PREFIX}/storage-initializer-sourceuri"
)
LOGGER_ANNOTATION: Final = f"{INTERNAL_PREFIX}/logger"
LOGGER_SINK_URL_ANNOTATION: Final = f"{INTERNAL_PREFIX}/logger-sink-url"
LOGGER_MODE_ANNOTATION: Final = f"{INTERNAL_PREFIX}/logger-mode"
BATCHER_ANNOTATION: Final = f"{INTERNAL_PREFIX}/batcher"
BATCHER_MAX_BATCH_SIZE_ANNOTATION: Final = f"{INTERNAL_PREFIX}/batcher-max-batchsize"
BATCHER_MAX_LATENCY_ANNOTATION: Final = f"{INTERNAL_PREFIX}/batcher-max-latency"
BATCHER_TIMEOUT_ANNOTATION: Final = f"{INTERNAL_PREFIX}/batcher-timeout"
AGENT_ANNOTATION: Final = f"{INTERNAL_PREFIX}/agent"
# Multi-model serving: where the agent finds the model config and puts the models.
AGENT_CONFIG_VOLUME_NAME_ANNOTATION: Final = f"{INTERNAL_PREFIX}/configVolumeName"
AGENT_CONFIG_MOUNT_PATH_ANNOTATION: Final = f"{INTERNAL_PREFIX}/configMountPath"
AGENT_MODEL_DIR_ANNOTATION: Final = f"{INTERNAL_PREFIX}/modelDir"
AGENT_CONFIG_MOUNT_PATH: Final = "/mnt/configs"

# Knative autoscaling annotations (the canonical, non-deprecated keys).
AUTOSCALING_CLASS_ANNOTATION: Final = "autoscaling.knative.dev/class"
AUTOSCALING_MIN_SCALE_ANNOTATION: Final = "autoscaling.knative.dev/min-scale"
AUTOSCALING_MAX_SCALE_ANNOTATION: Final = "autoscaling.knative.dev/max-scale"
AUTOSCALING_TARGET_ANNOTATION: Final = "autoscaling.knative.dev/target"
AUTOSCALING_METRIC_ANNOTATION: Final = "autoscaling.knative.dev/metric"
KPA_CLASS: Final = "kpa.autoscaling.knative.dev"
HPA_CLASS: Final = "hpa.autoscaling.knative.dev"

# Containers and paths.
MODEL_CONTAINER_NAME: Final = "kfserving-container"
STORAGE_INITIALIZER_CONTAINER_NAME: Final = "storage-initializer"
# Knative's sidecar in every revision pod.
QUEUE_PROXY_CONTAINER_NAME: Final = "queue-proxy"
AGENT_CONTAINER_NAME: Final = "agent"
MODEL_MOUNT_PATH: Final = "/mnt/models"
DEFAULT_HTTP_PORT: Final = 8080
DEFAULT_GRPC_PORT: Final = 9000
AGENT_PORT: Final = 9081
GPU_RESOURCE: Final = "nvidia.com/gpu"

# DNS label limit that every generated child name and host label must respect.
DNS_LABEL_MAX: Final = 63
# Knative names revisions "<ksvc>-00001".
REVISION_SUFFIX_LENGTH: Final = len("-00001")
# Knative tag hosts are "<tag>-<ksvc>.<ns>.<domain>".
PREV_TAG: Final = "prev"
LATEST_TAG: Final = "latest"

# The installation: the operator's namespace (the default), its webhook Service, and its own
# name, which is its field manager and its managed-by label value.
OPERATOR_NAMESPACE: Final = "kfserving-system"
WEBHOOK_SERVICE_NAME: Final = "kfserving-webhook-server-service"
OPERATOR_NAME: Final = "kfserving-operator"
V1ALPHA2_VERSION: Final = "v1alpha2"
APIEXTENSIONS_API_VERSION: Final = "apiextensions.k8s.io/v1"

# Conditions: the types every status has, and the values and reasons several layers write.
READY: Final = "Ready"
INGRESS_READY: Final = "IngressReady"
FALSE: Final = "False"
REASON_INVALID_SPEC: Final = "InvalidSpec"

# The logger's modes, as the agent takes them.
LOGGER_MODES: Final = ("all", "request", "response")
DEFAULT_LOGGER_MODE: Final = "all"
# The storage URI the model server or the agent reads (env var), and Azure blob hosts.
STORAGE_URI_ENV: Final = "STORAGE_URI"
AZURE_BLOB_HOST_SUFFIX: Final = ".blob.core.windows.net"
# Frameworks whose server takes an ``--nthread`` argument.
NTHREAD_FRAMEWORKS: Final = ("xgboost", "lightgbm")


def knative_service_name(isvc_name: str, component: str) -> str:
    """The Knative Service of one component: ``<isvc>-<component>-default``."""
    return f"{isvc_name}-{component}-default"


def model_config_name(isvc_name: str, shard: int = 0) -> str:
    """The multi-model config ConfigMap: ``modelconfig-<isvc>-<shard>`` (KFServing uses one
    shard per InferenceService; the name keeps the shard suffix)."""
    return f"modelconfig-{isvc_name}-{shard}"


# Raw deployment mode: plain Deployments, Services and HPAs instead of Knative Services.
DEPLOYMENT_MODE_ANNOTATION: Final = f"{GROUP}/deploymentMode"
SERVERLESS: Final = "Serverless"
RAW_DEPLOYMENT: Final = "RawDeployment"
# KServe's later spellings of the same two modes, accepted and normalised.
DEPLOYMENT_MODE_SYNONYMS: Final = {"Knative": SERVERLESS, "Standard": RAW_DEPLOYMENT}
# Which autoscaler a raw component gets: an HPA (default), or none with a fixed replica
# count from minReplicas, or none at all (an external autoscaler owns the replica count).
AUTOSCALER_CLASS_ANNOTATION: Final = f"{GROUP}/autoscalerClass"
AUTOSCALER_HPA: Final = "hpa"
AUTOSCALER_NONE: Final = "none"
AUTOSCALER_EXTERNAL: Final = "external"
AUTOSCALER_CLASSES: Final = (AUTOSCALER_HPA, AUTOSCALER_NONE, AUTOSCALER_EXTERNAL)
# The pod label a raw component's Deployment and Service select on: "isvc.<deployment>".
RAW_APP_LABEL: Final = "app"
RAW_APP_PREFIX: Final = "isvc."
# Our hash of a raw component's pod template: the "revision" of a Deployment.
RAW_REVISION_ANNOTATION: Final = f"{GROUP}/revision"
# During a raw canary, the previous rolled-out revision runs in "<deployment>-prev".
RAW_PREVIOUS_SUFFIX: Final = "-prev"
DEFAULT_HPA_UTILIZATION: Final = 80
APPS_API_VERSION: Final = "apps/v1"
HPA_API_VERSION: Final = "autoscaling/v2"
INGRESS_API_VERSION: Final = "networking.k8s.io/v1"
GATEWAY_GROUP: Final = "gateway.networking.k8s.io"
GATEWAY_API_VERSION: Final = f"{GATEWAY_GROUP}/v1"
