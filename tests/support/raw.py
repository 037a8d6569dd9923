"""Raw deployment mode in unit tests: what the deployment controller and a Gateway would
report for the children a plan applies (pure; the integration tests use the real ones)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from kfserving_operator.reconcile.plan import Observed

Key = tuple[str, str]


def _deployment(obj: Mapping[str, Any], available: bool, replicas: int,
                updated: int) -> dict[str, Any]:
    live = copy.deepcopy(dict(obj))
    live["metadata"]["generation"] = 1
    live["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "1"
    ready = replicas if available else 0
    available_cond = (("True", "MinimumReplicasAvailable") if available
                      else ("False", "MinimumReplicasUnavailable"))
    progressing = ("NewReplicaSetAvailable" if available and updated == replicas
                   else "ReplicaSetUpdated")
    live["status"] = {
        "observedGeneration": 1, "replicas": replicas, "updatedReplicas": updated,
        "readyReplicas": ready, "availableReplicas": ready,
        "conditions": [
            {"type": "Available", "status": available_cond[0], "reason": available_cond[1]},
            {"type": "Progressing", "status": "True", "reason": progressing}]}
    return live


def complete_deployment(obj: Mapping[str, Any], replicas: int = 1) -> dict[str, Any]:
    """``obj`` as a Deployment whose rollout completed and is Available."""
    return _deployment(obj, True, replicas, replicas)


def starting_deployment(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` as a new Deployment whose single pod is not ready yet."""
    return _deployment(obj, False, 1, 1)


def accepted_route(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` as an HTTPRoute its Gateway accepted."""
    live = copy.deepcopy(dict(obj))
    live["status"] = {"parents": [{
        "parentRef": live["spec"]["parentRefs"][0], "controllerName": "example.com/gateway",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted"},
                       {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs"}]}]}
    return live


def simulated(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A child as it looks once the cluster has done its part."""
    if obj["kind"] == "Deployment":
        return complete_deployment(obj)
    if obj["kind"] == "HTTPRoute":
        return accepted_route(obj)
    return copy.deepcopy(dict(obj))


def key(obj: Mapping[str, Any]) -> Key:
    return (str(obj["kind"]), str(obj["metadata"]["name"]))


def observed(objects: Iterable[Mapping[str, Any]], **extra: Any) -> Observed:
    """An Observed holding ``objects`` as raw children."""
    return Observed(ksvcs={}, raw={key(o): o for o in objects}, **extra)
