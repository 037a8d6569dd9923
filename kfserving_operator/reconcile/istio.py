"""The Istio VirtualService, the ExternalName Service and the top-level URLs (section 5)."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlparse

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.constants import (
    EXPLAINER,
    ISTIO_API_VERSION,
    PREDICTOR,
    TRANSFORMER,
    knative_service_name,
)
from kfserving_operator.api.inference_service import InferenceService
from kfserving_operator.reconcile.common import (
    JsonDict,
    child_annotations,
    is_cluster_local,
    isvc_labels,
    owner_reference,
)

GATEWAY_PORT: Final = 80
EXPLAIN_URI_REGEX: Final = r"^/v1/models/[\w-]+:explain$"
PORT_SUFFIX_REGEX: Final = r"(?::\d{1,5})?$"
# Characters Go's regexp.QuoteMeta escapes (RE2 syntax; '-' needs no escape outside classes).
_REGEX_SPECIAL: Final = frozenset("\\.+*?()|[]{}^$")


def quote_regex(value: str) -> str:
    """Escape ``value`` for an RE2 regex, like Go's ``regexp.QuoteMeta``."""
    return "".join("\\" + ch if ch in _REGEX_SPECIAL else ch for ch in value)


def internal_host(isvc: InferenceService, config: OperatorConfig) -> str:
    """``<name>.<namespace>.svc.<clusterDomain>``: the isvc's in-cluster host."""
    return f"{isvc.name}.{isvc.namespace}.svc.{config.ingress.cluster_domain}"


def backend_host(isvc: InferenceService, component: str, config: OperatorConfig) -> str:
    """The in-cluster host of a component's Knative Service (the Host header of a route)."""
    name = knative_service_name(isvc.name, component)
    return f"{name}.{isvc.namespace}.svc.{config.ingress.cluster_domain}"


def service_host(
    isvc: InferenceService, config: OperatorConfig, entry_component: str, entry_url: str | None
) -> str:
    """The isvc's host: the entry component's Knative URL host without ``-<component>-default``.

    ``entry_component`` is the transformer when there is one, else the predictor. Without a
    known URL (or with a Knative domain template that does not contain the Service name), the
    host is ``<name>.<namespace>.<ingressDomain>`` (``...svc.<clusterDomain>`` when
    cluster-local).
    """
    host = urlparse(entry_url).hostname if entry_url else None
    marker = f"-{entry_component}-default"
    if host and marker in host:
        return host.replace(marker, "", 1)
    if is_cluster_local(isvc):
        return internal_host(isvc, config)
    return f"{isvc.name}.{isvc.namespace}.{config.ingress.ingress_domain}"


def url_scheme(config: OperatorConfig, entry_url: str | None) -> str:
    """The scheme of the isvc URL: the one Knative uses, else the configured one."""
    scheme = urlparse(entry_url).scheme if entry_url else ""
    return scheme if scheme in ("http", "https") else config.ingress.url_scheme


def is_internal(isvc: InferenceService, config: OperatorConfig, host: str) -> bool:
    """True when the isvc gets no external host and gateway."""
    return is_cluster_local(isvc) or host == internal_host(isvc, config)


def internal_authority_regex(isvc: InferenceService, config: OperatorConfig) -> str:
    """Matches ``name.ns``, ``name.ns.svc`` and ``name.ns.svc.<clusterDomain>``, any port."""
    domain = quote_regex(config.ingress.cluster_domain)
    return (
        f"^{quote_regex(isvc.name)}\\.{quote_regex(isvc.namespace)}"
        f"(\\.svc(\\.{domain})?)?{PORT_SUFFIX_REGEX}"
    )


def external_authority_regex(host: str) -> str:
    """Matches exactly ``host``, any port."""
    return f"^{quote_regex(host)}{PORT_SUFFIX_REGEX}"


def _route(
    isvc: InferenceService,
    config: OperatorConfig,
    host: str,
    internal: bool,
    backend: str,
    uri_regex: str | None,
) -> JsonDict:
    ingress = config.ingress
    matches: list[JsonDict] = []
    authorities = [(internal_authority_regex(isvc, config), ingress.local_gateway)]
    if not internal:
        authorities.append((external_authority_regex(host), ingress.ingress_gateway))
    for authority, gateway in authorities:
        match: JsonDict = {}
        if uri_regex is not None:
            match["uri"] = {"regex": uri_regex}
        match["authority"] = {"regex": authority}
        match["gateways"] = [gateway]
        matches.append(match)
    return {
        "match": matches,
        "route": [
            {
                "destination": {
                    "host": ingress.local_gateway_service,
                    "port": {"number": GATEWAY_PORT},
                },
                "weight": 100,
            }
        ],
        "headers": {"request": {"set": {"Host": backend_host(isvc, backend, config)}}},
    }


def virtual_service(
    isvc: InferenceService,
    config: OperatorConfig,
    host: str,
    components: set[str],
) -> JsonDict:
    """The isvc's VirtualService: explain route (with an explainer) then the predict route."""
    ingress = config.ingress
    internal = is_internal(isvc, config, host)
    hosts = [internal_host(isvc, config)]
    gateways = [ingress.local_gateway]
    if not internal:
        hosts.append(host)
        gateways.append(ingress.ingress_gateway)
    routes: list[JsonDict] = []
    if EXPLAINER in components:
        routes.append(_route(isvc, config, host, internal, EXPLAINER, EXPLAIN_URI_REGEX))
    backend = TRANSFORMER if TRANSFORMER in components else PREDICTOR
    routes.append(_route(isvc, config, host, internal, backend, None))
    metadata: JsonDict = {
        "name": isvc.name,
        "namespace": isvc.namespace,
        "labels": isvc_labels(isvc),
        "ownerReferences": [owner_reference(isvc)],
    }
    annotations = child_annotations(isvc)
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": ISTIO_API_VERSION,
        "kind": "VirtualService",
        "metadata": metadata,
        "spec": {"hosts": hosts, "gateways": gateways, "http": routes},
    }


def external_name_service(isvc: InferenceService, config: OperatorConfig) -> JsonDict:
    """Service ``<name>`` of type ExternalName: makes the in-cluster host resolvable."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": isvc.name,
            "namespace": isvc.namespace,
            "labels": isvc_labels(isvc),
            "ownerReferences": [owner_reference(isvc)],
        },
        "spec": {
            "type": "ExternalName",
            "externalName": config.ingress.local_gateway_service,
            "sessionAffinity": "None",
        },
    }
