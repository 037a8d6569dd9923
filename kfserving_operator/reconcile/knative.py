"""The Knative Service (serving.knative.dev/v1) of one component (reference section 4.2).

The output is what Knative's webhook accepts as is: no nulls, no empty maps where Knative
rejects them, integers as integers, every annotation value a string, only the canonical
autoscaling keys (``min-scale``/``max-scale``; the legacy ``minScale``/``maxScale`` of the
isvc are dropped, since Knative refuses a template carrying both spellings).
"""

from __future__ import annotations

from typing import Final

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.constants import (
    AGENT_ANNOTATION,
    AGENT_CONFIG_MOUNT_PATH,
    AGENT_CONFIG_MOUNT_PATH_ANNOTATION,
    AGENT_CONFIG_VOLUME_NAME_ANNOTATION,
    AGENT_MODEL_DIR_ANNOTATION,
    AGENT_PORT,
    AUTOSCALING_CLASS_ANNOTATION,
    AUTOSCALING_MAX_SCALE_ANNOTATION,
    AUTOSCALING_METRIC_ANNOTATION,
    AUTOSCALING_MIN_SCALE_ANNOTATION,
    AUTOSCALING_TARGET_ANNOTATION,
    BATCHER_ANNOTATION,
    BATCHER_MAX_BATCH_SIZE_ANNOTATION,
    BATCHER_MAX_LATENCY_ANNOTATION,
    BATCHER_TIMEOUT_ANNOTATION,
    COMPONENT_LABEL,
    DEFAULT_LOGGER_MODE,
    EXPLAINER,
    KNATIVE_API_VERSION,
    KPA_CLASS,
    LOGGER_ANNOTATION,
    LOGGER_MODE_ANNOTATION,
    LOGGER_SINK_URL_ANNOTATION,
    MODEL_MOUNT_PATH,
    PREDICTOR,
    STORAGE_INITIALIZER_SOURCE_URI_ANNOTATION,
    VISIBILITY_LABEL,
    knative_service_name,
    model_config_name,
)
from kfserving_operator.api.inference_service import ComponentSpec, InferenceService
from kfserving_operator.api.podspec import PodSpecFields
from kfserving_operator.api.predictor import PredictorSpec
from kfserving_operator.reconcile.common import (
    JsonDict,
    child_annotations,
    isvc_labels,
    owner_reference,
)
from kfserving_operator.reconcile.containers import (
    component_container,
    is_multi_model,
    storage_uri,
)

DEFAULT_MIN_REPLICAS: Final = 1

_POD_FIELDS: Final = frozenset(PodSpecFields.model_fields) - {"containers"}


def component_labels(isvc: InferenceService, component: str) -> dict[str, str]:
    """Labels of a component's Knative Service: isvc labels + isvc name + component."""
    labels = isvc_labels(isvc)
    labels[COMPONENT_LABEL] = component
    return labels


def template_annotations(
    isvc: InferenceService, component: str, spec: ComponentSpec, config: OperatorConfig
) -> dict[str, str]:
    """Annotations of the revision template (autoscaling, storage, agent settings)."""
    annotations = child_annotations(isvc)
    min_replicas = DEFAULT_MIN_REPLICAS if spec.min_replicas is None else spec.min_replicas
    annotations[AUTOSCALING_MIN_SCALE_ANNOTATION] = str(min_replicas)
    if spec.max_replicas:
        annotations[AUTOSCALING_MAX_SCALE_ANNOTATION] = str(spec.max_replicas)
    if not annotations.get(AUTOSCALING_CLASS_ANNOTATION):
        annotations[AUTOSCALING_CLASS_ANNOTATION] = KPA_CLASS
    if spec.scale_target is not None:
        annotations[AUTOSCALING_TARGET_ANNOTATION] = str(spec.scale_target)
    if spec.scale_metric is not None:
        annotations[AUTOSCALING_METRIC_ANNOTATION] = spec.scale_metric
    uri = storage_uri(spec)
    if uri:
        annotations[STORAGE_INITIALIZER_SOURCE_URI_ANNOTATION] = uri
    if spec.logger is not None:
        annotations[LOGGER_ANNOTATION] = "true"
        if spec.logger.url:
            annotations[LOGGER_SINK_URL_ANNOTATION] = spec.logger.url
        annotations[LOGGER_MODE_ANNOTATION] = spec.logger.mode or DEFAULT_LOGGER_MODE
    if spec.batcher is not None and component != EXPLAINER:
        annotations[BATCHER_ANNOTATION] = "true"
        for key, value in (
            (BATCHER_MAX_BATCH_SIZE_ANNOTATION, spec.batcher.max_batch_size),
            (BATCHER_MAX_LATENCY_ANNOTATION, spec.batcher.max_latency),
            (BATCHER_TIMEOUT_ANNOTATION, spec.batcher.timeout),
        ):
            if value is not None:
                annotations[key] = str(value)
    if component == PREDICTOR and isinstance(spec, PredictorSpec) and is_multi_model(spec, config):
        annotations[AGENT_ANNOTATION] = "true"
        annotations[AGENT_CONFIG_VOLUME_NAME_ANNOTATION] = model_config_name(isvc.name)
        annotations[AGENT_CONFIG_MOUNT_PATH_ANNOTATION] = AGENT_CONFIG_MOUNT_PATH
        annotations[AGENT_MODEL_DIR_ANNOTATION] = MODEL_MOUNT_PATH
    return annotations


def uses_agent_proxy(component: str, spec: ComponentSpec) -> bool:
    """True when requests reach the component through the agent (logger or batcher)."""
    return spec.logger is not None or (spec.batcher is not None and component != EXPLAINER)


def pod_spec(
    isvc: InferenceService, component: str, spec: ComponentSpec, config: OperatorConfig, *,
    agent_port_on_model: bool = True,
) -> JsonDict:
    """The revision's pod spec: the component's pod fields, containers[0] generated.

    ``agent_port_on_model``: with the agent, the model container declares the agent's port
    when it declares none, so that Knative points queue-proxy at the agent (Serverless);
    raw mode's Service targets the agent's port itself.
    """
    wire: JsonDict = spec.model_dump(
        by_alias=True, exclude_none=True, mode="json", include=set(_POD_FIELDS)
    )
    container = component_container(isvc, component, spec, config)
    if agent_port_on_model and uses_agent_proxy(component, spec) and not container.get("ports"):
        container["ports"] = [{"containerPort": AGENT_PORT}]
    sidecars = [c.to_wire() for c in spec.custom_containers()[1:]]
    wire["containers"] = [container, *sidecars]
    return wire


def knative_service(
    isvc: InferenceService,
    component: str,
    spec: ComponentSpec,
    config: OperatorConfig,
    traffic: list[JsonDict],
) -> JsonDict:
    """The desired Knative Service of ``component``."""
    labels = component_labels(isvc, component)
    template_labels = {k: v for k, v in labels.items() if k != VISIBILITY_LABEL}
    template_spec: JsonDict = {}
    if spec.container_concurrency is not None:
        template_spec["containerConcurrency"] = spec.container_concurrency
    if spec.timeout is not None:
        template_spec["timeoutSeconds"] = spec.timeout
    template_spec.update(pod_spec(isvc, component, spec, config))
    return {
        "apiVersion": KNATIVE_API_VERSION,
        "kind": "Service",
        "metadata": {
            "name": knative_service_name(isvc.name, component),
            "namespace": isvc.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(isvc)],
        },
        "spec": {
            "template": {
                "metadata": {
                    "labels": template_labels,
                    "annotations": template_annotations(isvc, component, spec, config),
                },
                "spec": template_spec,
            },
            "traffic": traffic,
        },
    }


def model_config_map(isvc: InferenceService) -> JsonDict:
    """The (initially empty) model list of a multi-model predictor, read by the agent puller."""
    labels = dict(isvc.labels)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": model_config_name(isvc.name),
            "namespace": isvc.namespace,
            **({"labels": labels} if labels else {}),
            "ownerReferences": [owner_reference(isvc)],
        },
        "data": {"models.json": "[]"},
    }
