"""Raw deployment mode's children of one component: Deployment, Service, HPA. Pure.

Each component gets, all named ``<isvc>-<component>-default`` like its Knative Service in
Serverless mode, with the same labels plus ``app: isvc.<name>`` on the pods:

* an ``apps/v1`` Deployment whose pod template is the one the Knative revision would get
  (containers, pod fields, and the annotations the pod webhook reads to inject the storage
  initializer and the agent), with a TCP readiness probe on the model server's port when the
  model container has none (Knative's queue-proxy probed it in Serverless mode);
* a ``v1`` Service, port 80 to that port, or to the agent's port (9081) when a logger or
  batcher puts the agent in front of the model server (the pod webhook injects it, listening
  there and forwarding to the model server's port);
* an ``autoscaling/v2`` HorizontalPodAutoscaler from ``minReplicas``, ``maxReplicas``,
  ``scaleMetric`` and ``scaleTarget`` (cpu or memory utilisation, 80 % unless set), unless
  the annotation ``serving.kubeflow.org/autoscalerClass`` is ``none`` (a fixed replica count
  from ``minReplicas``) or ``external`` (someone else sets the replica count).

``spec.replicas`` is left out of the Deployment while an autoscaler owns it, so applying the
Deployment never fights the HPA.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.constants import (
    AGENT_PORT,
    APPS_API_VERSION,
    AUTOSCALER_CLASS_ANNOTATION,
    AUTOSCALER_HPA,
    AUTOSCALER_NONE,
    BATCHER_ANNOTATION,
    DEFAULT_HPA_UTILIZATION,
    DEFAULT_HTTP_PORT,
    HPA_API_VERSION,
    LOGGER_ANNOTATION,
    RAW_APP_LABEL,
    RAW_APP_PREFIX,
    RAW_PREVIOUS_SUFFIX,
    RAW_REVISION_ANNOTATION,
    VISIBILITY_LABEL,
    knative_service_name,
)
from kfserving_operator.api.inference_service import ComponentSpec, InferenceService
from kfserving_operator.reconcile.common import (
    JsonDict,
    child_annotations,
    mapping,
    owner_reference,
    sequence,
)
from kfserving_operator.reconcile.knative import (
    component_labels,
    pod_spec,
    template_annotations,
)

SERVICE_PORT: Final = 80
KNATIVE_AUTOSCALING_PREFIX: Final = "autoscaling.knative.dev/"
# Pod template annotations the deployment controller or kubectl set; never ours to copy.
_SERVER_TEMPLATE_ANNOTATIONS: Final = ("kubectl.kubernetes.io/restartedAt",)


def deployment_name(isvc_name: str, component: str) -> str:
    """``<isvc>-<component>-default``: the Deployment, Service and HPA of a component."""
    return knative_service_name(isvc_name, component)


def previous_name(isvc_name: str, component: str) -> str:
    """``<isvc>-<component>-default-prev``: the previous rolled-out revision during a canary."""
    return deployment_name(isvc_name, component) + RAW_PREVIOUS_SUFFIX


def app_label(name: str) -> str:
    """``isvc.<deployment>``: what a raw Deployment's selector and its Service select."""
    return RAW_APP_PREFIX + name


def autoscaler_class(isvc: InferenceService) -> str:
    return isvc.annotations.get(AUTOSCALER_CLASS_ANNOTATION) or AUTOSCALER_HPA


def min_replicas(spec: ComponentSpec) -> int:
    """At least 1: raw mode cannot scale to zero (admission refuses 0)."""
    return max(spec.min_replicas or 1, 1)


def serving_port(template_spec: Mapping[str, Any]) -> int:
    """The model server's port: the first container port of the first container, else
    8080."""
    containers = sequence(template_spec.get("containers"))
    first = mapping(containers[0]) if containers else {}
    for port in sequence(first.get("ports")):
        number = mapping(port).get("containerPort")
        if isinstance(number, int) and not isinstance(number, bool):
            return number
    return DEFAULT_HTTP_PORT


def revision_hash(template: Mapping[str, Any]) -> str:
    """A short stable hash of a pod template: the raw "revision" of a component."""
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def revision_name(name: str, digest: str) -> str:
    """``<deployment>-<hash>``: how a raw revision is named in the status."""
    return f"{name}-{digest}"


def _metadata(isvc: InferenceService, component: str, name: str) -> JsonDict:
    meta: JsonDict = {
        "name": name,
        "namespace": isvc.namespace,
        "labels": component_labels(isvc, component),
        "ownerReferences": [owner_reference(isvc)],
    }
    annotations = child_annotations(isvc)
    if annotations:
        meta["annotations"] = annotations
    return meta


def pod_template(isvc: InferenceService, component: str, spec: ComponentSpec,
                 config: OperatorConfig) -> JsonDict:
    """The pod template (without the ``app`` label, which depends on the Deployment)."""
    labels = {k: v for k, v in component_labels(isvc, component).items()
              if k != VISIBILITY_LABEL}
    annotations = {k: v for k, v in template_annotations(isvc, component, spec, config).items()
                   if not k.startswith(KNATIVE_AUTOSCALING_PREFIX)}
    wire = pod_spec(isvc, component, spec, config, agent_port_on_model=False)
    first = wire["containers"][0]
    if "readinessProbe" not in first:
        first["readinessProbe"] = {"tcpSocket": {"port": serving_port(wire)}}
    metadata: JsonDict = {"labels": labels}
    if annotations:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": wire}


def _target_port(template: Mapping[str, Any]) -> int:
    """Where the Service sends requests: the agent when the template asks for a logger or
    batcher, else the model server."""
    annotations = mapping(mapping(template.get("metadata")).get("annotations"))
    if LOGGER_ANNOTATION in annotations or BATCHER_ANNOTATION in annotations:
        return AGENT_PORT
    return serving_port(mapping(template.get("spec")))


def _with_app(template: Mapping[str, Any], name: str) -> JsonDict:
    metadata = dict(mapping(template.get("metadata")))
    labels = {k: v for k, v in mapping(metadata.get("labels")).items()
              if k != "pod-template-hash"}
    labels[RAW_APP_LABEL] = app_label(name)
    metadata["labels"] = labels
    annotations = {k: v for k, v in mapping(metadata.get("annotations")).items()
                   if k not in _SERVER_TEMPLATE_ANNOTATIONS}
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    return {"metadata": metadata, "spec": dict(mapping(template.get("spec")))}


def deployment(isvc: InferenceService, component: str, template: Mapping[str, Any], *,
               name: str, digest: str,
               replicas: int | None) -> JsonDict:
    """A Deployment running ``template`` (revision ``digest``); ``replicas`` None: left to
    the autoscaler."""
    meta = _metadata(isvc, component, name)
    meta["annotations"] = {**meta.get("annotations", {}), RAW_REVISION_ANNOTATION: digest}
    body: JsonDict = {"selector": {"matchLabels": {RAW_APP_LABEL: app_label(name)}},
                      "template": _with_app(template, name)}
    if replicas is not None:
        body = {"replicas": replicas, **body}
    return {"apiVersion": APPS_API_VERSION, "kind": "Deployment", "metadata": meta,
            "spec": body}


def component_deployment(isvc: InferenceService, component: str, spec: ComponentSpec,
                         config: OperatorConfig) -> JsonDict:
    """The component's Deployment, running the current spec."""
    template = pod_template(isvc, component, spec, config)
    replicas = min_replicas(spec) if autoscaler_class(isvc) == AUTOSCALER_NONE else None
    return deployment(isvc, component, template,
                      name=deployment_name(isvc.name, component),
                      digest=revision_hash(template), replicas=replicas)


def service(isvc: InferenceService, component: str, template: Mapping[str, Any],
            name: str) -> JsonDict:
    """The Service in front of Deployment ``name``: port 80 to its serving port."""
    port: JsonDict = {"name": "http", "port": SERVICE_PORT, "protocol": "TCP",
                      "targetPort": _target_port(template)}
    containers = sequence(mapping(template.get("spec")).get("containers"))
    first_ports = sequence(mapping(containers[0]).get("ports")) if containers else []
    if first_ports:
        port_name = str(mapping(first_ports[0]).get("name") or "")
        if "grpc" in port_name or "h2c" in port_name:
            port["name"] = port_name
            port["appProtocol"] = "kubernetes.io/h2c"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(isvc, component, name),
        "spec": {"selector": {RAW_APP_LABEL: app_label(name)}, "ports": [port]},
    }


def horizontal_pod_autoscaler(isvc: InferenceService, component: str,
                              spec: ComponentSpec) -> JsonDict | None:
    """The component's HPA, or None when the autoscaler class says there is none."""
    if autoscaler_class(isvc) != AUTOSCALER_HPA:
        return None
    name = deployment_name(isvc.name, component)
    least = min_replicas(spec)
    metric = spec.scale_metric or "cpu"
    target = spec.scale_target or DEFAULT_HPA_UTILIZATION
    return {
        "apiVersion": HPA_API_VERSION,
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(isvc, component, name),
        "spec": {
            "scaleTargetRef": {"apiVersion": APPS_API_VERSION, "kind": "Deployment",
                               "name": name},
            "minReplicas": least,
            "maxReplicas": max(spec.max_replicas or 0, least),
            "metrics": [{"type": "Resource", "resource": {
                "name": metric,
                "target": {"type": "Utilization", "averageUtilization": target}}}],
        },
    }
