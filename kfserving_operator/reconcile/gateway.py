"""Raw deployment mode's routes: one Ingress, or Gateway API HTTPRoutes, and the URLs. Pure.

Hosts come from ``ingress.domainTemplate`` (``{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}``
by default): the InferenceService's own host routes to its entry component (the transformer
when there is one, else the predictor), and each component also has a host of its own,
rendered with ``<isvc>-<component>`` as the name. With an explainer, the top-level host sends
``/v1/models/<isvc>:explain`` to it.

Paths are prefix matches (and one exact match for ``:explain`` on an Ingress), never regular
expressions, and an HTTPRoute carries ``timeouts.request`` only when configured
(``ingress.httpRouteTimeout``) or the component sets ``timeout``: some gateways refuse both.
No route is made with ``ingress.disableIngressCreation`` or cluster-local visibility; the URLs
are then the in-cluster ones of the Services, the only ones known to answer (KServe wrote the
templated host anyway, which pointed at nothing, or at an invalid host).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.constants import (
    EXPLAINER,
    GATEWAY_API_VERSION,
    GATEWAY_GROUP,
    INGRESS_API_VERSION,
    PREDICTOR,
    TRANSFORMER,
)
from kfserving_operator.api.domain_template import render_host
from kfserving_operator.api.inference_service import InferenceService
from kfserving_operator.api.raw_validation import host_values, routes_made
from kfserving_operator.reconcile.common import (
    JsonDict,
    child_annotations,
    isvc_labels,
    owner_reference,
)
from kfserving_operator.reconcile.raw import SERVICE_PORT, deployment_name

# One backend of a route: (Service name, weight or None for an unweighted single backend).
Backend = tuple[str, int | None]

EXPLAIN_PATH: Final = "/v1/models/{name}:explain"


def entry_component(components: Sequence[str]) -> str:
    return TRANSFORMER if TRANSFORMER in components else PREDICTOR


def top_host(isvc: InferenceService, config: OperatorConfig) -> str:
    return render_host(config.ingress.domain_template, host_values(isvc, config, isvc.name))


def component_host(isvc: InferenceService, config: OperatorConfig, component: str) -> str:
    name = f"{isvc.name}-{component}"
    return render_host(config.ingress.domain_template, host_values(isvc, config, name))


def service_host(isvc: InferenceService, config: OperatorConfig, name: str) -> str:
    return f"{name}.{isvc.namespace}.svc.{config.ingress.cluster_domain}"


def isvc_url(isvc: InferenceService, config: OperatorConfig, components: Sequence[str]) -> str:
    """``status.url``: the templated host, or the entry Service when no route is made."""
    if not routes_made(isvc, config):
        entry = deployment_name(isvc.name, entry_component(components))
        return f"http://{service_host(isvc, config, entry)}"
    return f"{config.ingress.url_scheme}://{top_host(isvc, config)}"


def component_url(isvc: InferenceService, config: OperatorConfig, component: str) -> str:
    if not routes_made(isvc, config):
        return f"http://{service_host(isvc, config, deployment_name(isvc.name, component))}"
    return f"{config.ingress.url_scheme}://{component_host(isvc, config, component)}"


def _metadata(isvc: InferenceService, name: str) -> JsonDict:
    meta: JsonDict = {"name": name, "namespace": isvc.namespace, "labels": isvc_labels(isvc),
                      "ownerReferences": [owner_reference(isvc)]}
    annotations = child_annotations(isvc)
    if annotations:
        meta["annotations"] = annotations
    return meta


def _ingress_backend(service: str) -> JsonDict:
    return {"service": {"name": service, "port": {"number": SERVICE_PORT}}}


def ingress(isvc: InferenceService, config: OperatorConfig,
            components: Sequence[str]) -> JsonDict | None:
    """The InferenceService's Ingress, or None when no route is made."""
    if not routes_made(isvc, config):
        return None
    entry = deployment_name(isvc.name, entry_component(components))
    top_paths: list[JsonDict] = []
    if EXPLAINER in components:
        top_paths.append({"path": EXPLAIN_PATH.format(name=isvc.name), "pathType": "Exact",
                          "backend": _ingress_backend(deployment_name(isvc.name, EXPLAINER))})
    top_paths.append({"path": "/", "pathType": "Prefix", "backend": _ingress_backend(entry)})
    rules: list[JsonDict] = [{"host": top_host(isvc, config), "http": {"paths": top_paths}}]
    for component in components:
        rules.append({"host": component_host(isvc, config, component), "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": _ingress_backend(deployment_name(isvc.name, component))}]}})
    spec: JsonDict = {}
    if config.ingress.ingress_class_name:
        spec["ingressClassName"] = config.ingress.ingress_class_name
    spec["rules"] = rules
    return {"apiVersion": INGRESS_API_VERSION, "kind": "Ingress",
            "metadata": _metadata(isvc, isvc.name), "spec": spec}


def _backend_refs(backends: Sequence[Backend]) -> list[JsonDict]:
    refs: list[JsonDict] = []
    for name, weight in backends:
        ref: JsonDict = {"name": name, "port": SERVICE_PORT}
        if weight is not None:
            ref["weight"] = weight
        refs.append(ref)
    return refs


def _rule(path: str, backends: Sequence[Backend], timeout: str | None) -> JsonDict:
    rule: JsonDict = {"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                      "backendRefs": _backend_refs(backends)}
    if timeout:
        rule["timeouts"] = {"request": timeout}
    return rule


def _parent_ref(config: OperatorConfig) -> JsonDict:
    namespace, _, name = config.ingress.kserve_ingress_gateway.partition("/")
    return {"group": GATEWAY_GROUP, "kind": "Gateway", "name": name, "namespace": namespace}


def _timeout(config: OperatorConfig, seconds: int | None) -> str | None:
    if seconds is not None:
        return f"{seconds}s"
    return config.ingress.http_route_timeout


def http_route(isvc: InferenceService, config: OperatorConfig, name: str, host: str,
               rules: list[JsonDict]) -> JsonDict:
    return {"apiVersion": GATEWAY_API_VERSION, "kind": "HTTPRoute",
            "metadata": _metadata(isvc, name),
            "spec": {"parentRefs": [_parent_ref(config)], "hostnames": [host], "rules": rules}}


def http_routes(isvc: InferenceService, config: OperatorConfig,
                backends: Mapping[str, Sequence[Backend]],
                timeouts: Mapping[str, int | None]) -> list[JsonDict]:
    """The top-level HTTPRoute ``<isvc>`` and one ``<isvc>-<component>`` per component.

    ``backends`` gives each component's Services with their weights (two during a canary).
    """
    if not routes_made(isvc, config):
        return []
    components = list(backends)
    entry = entry_component(components)
    top_rules: list[JsonDict] = []
    if EXPLAINER in backends:
        top_rules.append(_rule(EXPLAIN_PATH.format(name=isvc.name), backends[EXPLAINER],
                               _timeout(config, timeouts.get(EXPLAINER))))
    top_rules.append(_rule("/", backends[entry], _timeout(config, timeouts.get(entry))))
    routes = [http_route(isvc, config, isvc.name, top_host(isvc, config), top_rules)]
    for component in components:
        rule = _rule("/", backends[component], _timeout(config, timeouts.get(component)))
        routes.append(http_route(isvc, config, f"{isvc.name}-{component}",
                                 component_host(isvc, config, component), [rule]))
    return routes
