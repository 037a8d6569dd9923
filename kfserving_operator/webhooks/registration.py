"""The webhook configurations the operator registers, as plain dicts.

Two ways to reach the webhook server:

- ``url``: the operator runs outside the cluster (``make run``, the tests) and serves on
  loopback; the apiserver calls ``https://127.0.0.1:<port>/<path>`` directly.
- ``service``: the operator runs in a pod behind a Service (the Helm chart and kustomize
  manifests ship the same configurations with a Service reference).

Every webhook uses ``failurePolicy: Fail``. For InferenceServices that is what makes
defaulting and validation trustworthy. For pods it is safe only because the scope is tiny:
the ``objectSelector`` admits only pods labelled ``serving.kubeflow.org/inferenceservice``
(which only our Knative revisions carry), and the operator's own namespace is excluded, so
an operator outage can never block the operator's own pod or anyone else's workload.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kfserving_operator.api import constants as c
from kfserving_operator.api.constants import OPERATOR_NAME as MANAGED_BY
from kfserving_operator.api.constants import V1ALPHA2_VERSION as V1ALPHA2

CONFIGURATION_NAME = "inferenceservice.serving.kubeflow.org"
DEFAULTER_PATH = "/mutate-serving-kubeflow-org-v1beta1-inferenceservice"
VALIDATOR_PATH = "/validate-serving-kubeflow-org-v1beta1-inferenceservice"
POD_MUTATOR_PATH = "/mutate-pods"
DEFAULTER_NAME = "inferenceservice.kfserving-webhook-server.v1beta1.defaulter"
VALIDATOR_NAME = "inferenceservice.kfserving-webhook-server.v1beta1.validator"
POD_MUTATOR_NAME = "inferenceservice.kfserving-webhook-server.pod-mutator"
V1ALPHA2_DEFAULTER_PATH = "/mutate-serving-kubeflow-org-v1alpha2-inferenceservice"
V1ALPHA2_VALIDATOR_PATH = "/validate-serving-kubeflow-org-v1alpha2-inferenceservice"
V1ALPHA2_DEFAULTER_NAME = "inferenceservice.kfserving-webhook-server.v1alpha2.defaulter"
V1ALPHA2_VALIDATOR_NAME = "inferenceservice.kfserving-webhook-server.v1alpha2.validator"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Endpoint:
    """Where one webhook of an existing configuration sends its reviews."""

    url: str | None = None
    service: str | None = None  # "namespace/name"


def endpoints(configuration: dict[str, Any]) -> Iterator[Endpoint]:
    """The endpoints of every webhook in a Mutating/ValidatingWebhookConfiguration."""
    for hook in configuration.get("webhooks") or []:
        client = hook.get("clientConfig") or {}
        service = client.get("service")
        if service:
            yield Endpoint(service=f"{service.get('namespace')}/{service.get('name')}")
        elif client.get("url"):
            yield Endpoint(url=str(client["url"]))


def url_client_config(base_url: str, path: str, ca_bundle: bytes) -> dict[str, Any]:
    return {"url": base_url.rstrip("/") + path,
            "caBundle": base64.b64encode(ca_bundle).decode()}


def service_client_config(service: str, namespace: str, path: str, ca_bundle: bytes,
                          port: int = 443) -> dict[str, Any]:
    return {
        "service": {"name": service, "namespace": namespace, "path": path, "port": port},
        "caBundle": base64.b64encode(ca_bundle).decode(),
    }


def _isvc_rule(version: str = c.VERSION) -> dict[str, Any]:
    return {
        "apiGroups": [c.GROUP],
        "apiVersions": [version],
        "operations": ["CREATE", "UPDATE"],
        "resources": [c.PLURAL],
        "scope": "Namespaced",
    }


def _common(client_config: dict[str, Any], match_policy: str = "Equivalent") -> dict[str, Any]:
    return {
        "clientConfig": client_config,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Fail",
        "matchPolicy": match_policy,
        "timeoutSeconds": 10,
    }


# The v1alpha2 webhooks see only requests made in v1alpha2 (matchPolicy Exact): with
# Equivalent they would also get every v1beta1 request, converted, and refuse its canary. The
# v1beta1 webhooks (Equivalent) see v1alpha2 requests too, converted, so one set of rules
# holds for both versions.
def _v1alpha2_defaulter(client_config_for: Any,
                        watch_namespaces: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "name": V1ALPHA2_DEFAULTER_NAME,
        **_common(client_config_for(V1ALPHA2_DEFAULTER_PATH), "Exact"),
        "rules": [_isvc_rule(V1ALPHA2)],
        **namespace_scope(watch_namespaces),
        "reinvocationPolicy": "Never",
    }


def _v1alpha2_validator(client_config_for: Any,
                        watch_namespaces: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "name": V1ALPHA2_VALIDATOR_NAME,
        **_common(client_config_for(V1ALPHA2_VALIDATOR_PATH), "Exact"),
        "rules": [_isvc_rule(V1ALPHA2)],
        **namespace_scope(watch_namespaces),
    }


def _only_in(namespaces: tuple[str, ...]) -> dict[str, Any]:
    """A namespaceSelector for a namespace-scoped operator: its namespaces, nothing else."""
    return {"namespaceSelector": {"matchExpressions": [{
        "key": "kubernetes.io/metadata.name", "operator": "In", "values": list(namespaces)}]}}


def namespace_scope(watch_namespaces: tuple[str, ...]) -> dict[str, Any]:
    """What a webhook adds to select only ``watch_namespaces`` (nothing: every namespace)."""
    return _only_in(watch_namespaces) if watch_namespaces else {}


def mutating_configuration(client_config_for: Any, operator_namespace: str,
                           watch_namespaces: tuple[str, ...] = ()) -> dict[str, Any]:
    """The defaulter for InferenceServices and the pod mutator for model pods.

    ``client_config_for(path)`` returns the clientConfig of one webhook path. With
    ``watch_namespaces`` both webhooks see only those namespaces, so InferenceServices and pods
    elsewhere are left to whatever else serves them.
    """
    pod_namespaces = tuple(n for n in watch_namespaces if n != operator_namespace)
    pod_selector = _only_in(pod_namespaces) if watch_namespaces else {
        "namespaceSelector": {
            "matchExpressions": [{
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": [operator_namespace],
            }],
        },
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "webhooks": [
            {
                "name": DEFAULTER_NAME,
                **_common(client_config_for(DEFAULTER_PATH)),
                "rules": [_isvc_rule()],
                **namespace_scope(watch_namespaces),
                "reinvocationPolicy": "Never",
            },
            {
                "name": POD_MUTATOR_NAME,
                **_common(client_config_for(POD_MUTATOR_PATH)),
                "rules": [{
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE"],
                    "resources": ["pods"],
                    "scope": "Namespaced",
                }],
                "objectSelector": {
                    "matchExpressions": [{"key": c.ISVC_LABEL, "operator": "Exists"}],
                },
                **pod_selector,
                # Re-run after other mutators (Istio's sidecar injector, say) so our init
                # container and mounts see the final pod; the mutation is idempotent.
                "reinvocationPolicy": "IfNeeded",
            },
            _v1alpha2_defaulter(client_config_for, watch_namespaces),
        ],
    }


def validating_configuration(client_config_for: Any,
                             watch_namespaces: tuple[str, ...] = ()) -> dict[str, Any]:
    """The validator for InferenceServices; DELETE is not in its rules, so never blocked."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "webhooks": [
            {
                "name": VALIDATOR_NAME,
                **_common(client_config_for(VALIDATOR_PATH)),
                "rules": [_isvc_rule()],
                **namespace_scope(watch_namespaces),
            },
            _v1alpha2_validator(client_config_for, watch_namespaces),
        ],
    }
