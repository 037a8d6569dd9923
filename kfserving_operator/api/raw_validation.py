"""Admission rules of raw deployment mode (plain Deployments, Services, HPAs and routes).

Each rule says why: raw mode has no activator to hold requests while scaling from zero, a
HorizontalPodAutoscaler scales only on cpu or memory, and a plain Ingress cannot weight two
backends, so a canary needs Gateway API. Problems are returned as (path, message) pairs;
``validation.py`` turns them into its field errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.constants import (
    AUTOSCALER_CLASS_ANNOTATION,
    AUTOSCALER_CLASSES,
    DEPLOYMENT_MODE_ANNOTATION,
    DNS_LABEL_MAX,
    RAW_APP_PREFIX,
    RAW_DEPLOYMENT,
    RAW_PREVIOUS_SUFFIX,
    SERVERLESS,
    VISIBILITY_CLUSTER_LOCAL,
    VISIBILITY_LABEL,
    knative_service_name,
)
from kfserving_operator.api.deployment_mode import MODE_SPELLINGS, normalise_mode
from kfserving_operator.api.domain_template import HostValues, host_error, render_host
from kfserving_operator.api.inference_service import InferenceService

Problem = tuple[Sequence[str | int], str]

HPA_METRICS: Final = ("cpu", "memory")


def isvc_mode(isvc: InferenceService, config: OperatorConfig) -> str:
    """The mode ``isvc`` is served in: recorded in its status, annotated, or the default."""
    recorded = normalise_mode(isvc.status.deployment_mode) if isvc.status else None
    return (recorded or normalise_mode(isvc.annotations.get(DEPLOYMENT_MODE_ANNOTATION))
            or normalise_mode(config.deploy.default_deployment_mode) or SERVERLESS)


def routes_made(isvc: InferenceService, config: OperatorConfig) -> bool:
    """True when raw mode makes an Ingress or HTTPRoutes for ``isvc``."""
    return not (config.ingress.disable_ingress_creation
                or isvc.labels.get(VISIBILITY_LABEL) == VISIBILITY_CLUSTER_LOCAL)


def host_values(isvc: InferenceService, config: OperatorConfig, name: str) -> HostValues:
    """What the domain template reads, for the host of ``name`` (the isvc or a component)."""
    return HostValues(name, isvc.namespace, config.ingress.ingress_domain, isvc.annotations,
                      isvc.labels)


def route_hosts(isvc: InferenceService, config: OperatorConfig) -> list[str]:
    """Every host a raw route of ``isvc`` carries: the top-level one, then one per component."""
    template = config.ingress.domain_template
    names = [isvc.name, *(f"{isvc.name}-{c}" for c, _ in isvc.components())]
    return [render_host(template, host_values(isvc, config, n)) for n in names]


def raw_mode_problems(isvc: InferenceService, config: OperatorConfig) -> list[Problem]:
    """Every raw-mode problem of ``isvc`` (none in Serverless mode, bar a bad annotation)."""
    problems: list[Problem] = []
    annotations = isvc.annotations
    annotation_path = ("metadata", "annotations", DEPLOYMENT_MODE_ANNOTATION)
    if DEPLOYMENT_MODE_ANNOTATION in annotations and normalise_mode(
            annotations[DEPLOYMENT_MODE_ANNOTATION]) is None:
        problems.append((annotation_path, f"must be one of {', '.join(MODE_SPELLINGS)}; got "
                                          f"{annotations[DEPLOYMENT_MODE_ANNOTATION]!r}"))
        return problems
    if isvc_mode(isvc, config) != RAW_DEPLOYMENT:
        return problems
    autoscaler = annotations.get(AUTOSCALER_CLASS_ANNOTATION)
    if autoscaler is not None and autoscaler not in AUTOSCALER_CLASSES:
        problems.append((("metadata", "annotations", AUTOSCALER_CLASS_ANNOTATION),
                         f"must be one of {', '.join(AUTOSCALER_CLASSES)} in RawDeployment "
                         f"mode; got {autoscaler!r}"))
    gateway_api = config.ingress.enable_gateway_api
    for component, spec in isvc.components():
        base = ("spec", component)
        if spec.min_replicas == 0:
            problems.append(((*base, "minReplicas"),
                             "must be at least 1 in RawDeployment mode: a Deployment cannot "
                             "scale to zero and back (there is no activator to hold requests "
                             "while a pod starts); set minReplicas to 1 or more, or use "
                             "Serverless mode for scale to zero"))
        if spec.scale_metric is not None and spec.scale_metric not in HPA_METRICS:
            problems.append(((*base, "scaleMetric"),
                             f"must be cpu or memory in RawDeployment mode (a "
                             f"HorizontalPodAutoscaler scales on resource use; "
                             f"{spec.scale_metric} needs Knative's autoscaler); got "
                             f"{spec.scale_metric!r}"))
        percent = spec.canary_traffic_percent
        if percent is not None and percent < 100:
            if not gateway_api:
                problems.append(((*base, "canaryTrafficPercent"),
                                 "a canary in RawDeployment mode needs Gateway API routes "
                                 "(ingress.enableGatewayApi in the inferenceservice-config): "
                                 "a networking.k8s.io/v1 Ingress cannot split traffic by "
                                 "weight between two Deployments"))
            elif not routes_made(isvc, config):
                problems.append(((*base, "canaryTrafficPercent"),
                                 "a canary in RawDeployment mode splits the weights of the "
                                 "InferenceService's HTTPRoute, and none is made here "
                                 "(ingress.disableIngressCreation, or cluster-local "
                                 "visibility)"))
        longest = RAW_APP_PREFIX + knative_service_name(isvc.name, component)
        if percent is not None:
            longest += RAW_PREVIOUS_SUFFIX
        if isvc.name and len(longest) > DNS_LABEL_MAX:
            problems.append((("metadata", "name"),
                             f"is too long for RawDeployment mode: the pod label value "
                             f"{longest!r} must be at most {DNS_LABEL_MAX} characters"))
    if isvc.name and isvc.namespace and routes_made(isvc, config):
        for host in route_hosts(isvc, config):
            problem = host_error(host)
            if problem:
                problems.append((("metadata", "name"),
                                 f"gives a route host that is not a valid DNS name "
                                 f"(ingress.domainTemplate): {problem}"))
                break
    return problems
