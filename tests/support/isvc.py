"""InferenceServices in tests: a small one to apply, and reading their status, conditions
and children, with waits."""

from __future__ import annotations

import json
from typing import Any

from tests.support.cluster import Cluster, wait_for

KSVC = "services.serving.knative.dev"


def get_or_none(cluster: Cluster, *args: str) -> dict[str, Any] | None:
    """``kubectl get ... -o json``, or None when it is not there."""
    out = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(out) if out else None


def isvc(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.get_json("isvc", name, "-n", namespace)


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """The condition ``kind`` of an object, or of its status ({} when absent)."""
    status = obj.get("status") if "status" in obj else obj
    for cond in (status or {}).get("conditions", []) or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def wait_ready(cluster: Cluster, namespace: str, name: str,
               timeout: float = 60) -> dict[str, Any]:
    """Wait until the InferenceService is Ready for its current generation; return it."""
    def ready() -> dict[str, Any] | None:
        obj = get_or_none(cluster, "isvc", name, "-n", namespace)
        if not obj:
            return None
        current = obj.get("status", {}).get("observedGeneration") == \
            obj["metadata"]["generation"]
        return obj if current and condition(obj, "Ready").get("status") == "True" else None

    def last_seen() -> str:
        obj = get_or_none(cluster, "isvc", name, "-n", namespace) or {}
        return json.dumps(obj.get("status"), indent=1)

    try:
        result: dict[str, Any] = wait_for(ready, timeout=timeout,
                                          message=f"isvc {namespace}/{name} Ready")
    except TimeoutError as exc:
        children = cluster.kubectl("get", "ksvc,revisions,pods", "-n", namespace, check=False)
        raise TimeoutError(f"{exc}\nlast status: {last_seen()}\n{children}") from None
    return result


def wait_not_ready(cluster: Cluster, namespace: str, name: str, *needles: str,
                   timeout: float = 60) -> dict[str, Any]:
    """Wait until the InferenceService's Ready is False with every one of ``needles`` in its
    reason or message; return that condition."""
    def failing() -> dict[str, Any] | None:
        ready = condition(get_or_none(cluster, "isvc", name, "-n", namespace) or {}, "Ready")
        text = f"{ready.get('reason', '')} {ready.get('message', '')}"
        if ready.get("status") == "False" and all(needle in text for needle in needles):
            return ready
        return None

    try:
        found: dict[str, Any] = wait_for(failing, timeout=timeout,
                                         message=f"{name} not Ready because {needles}")
    except TimeoutError as exc:
        obj = get_or_none(cluster, "isvc", name, "-n", namespace) or {}
        raise TimeoutError(f"{exc}\nReady: {condition(obj, 'Ready')}") from None
    return found


def names(cluster: Cluster, resource: str, namespace: str) -> set[str]:
    """Names of the objects of one resource in a namespace."""
    out = cluster.kubectl("get", resource, "-n", namespace, "-o", "name", check=False)
    return {line.split("/", 1)[1] for line in out.split() if "/" in line}


def sklearn_isvc(name: str, uri: str = "gs://models/iris/v1",
                 **predictor: Any) -> dict[str, Any]:
    """An sklearn InferenceService; ``predictor`` adds fields to its predictor."""
    return {
        "apiVersion": "serving.kubeflow.org/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": {"sklearn": {"storageUri": uri}, **predictor}},
    }


def isvc_status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = cluster.get_json("isvc", name, "-n", namespace).get("status") or {}
    return status


def wait_condition(cluster: Cluster, namespace: str, name: str, kind: str, value: str,
                   timeout: float = 30) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        status = isvc_status(cluster, namespace, name)
        return status if condition(status, kind).get("status") == value else None

    result: dict[str, Any] = wait_for(check, timeout=timeout,
                                      message=f"{name} {kind}={value}")
    return result
