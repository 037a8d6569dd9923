"""What a raw-mode reconcile needs beyond its children: the ReplicaSets and pods of a
Deployment that is not complete and available, so the status can say why (ReplicaFailure,
image pull, crash loop, OOM, storage initializer, unschedulable).

They come from two informers of their own (one LIST, then a watch, like every other type),
label-selected to the pods and ReplicaSets of raw Deployments (``RAW_POD_SELECTOR``), not from
reads per reconcile: a pod that starts crashing wakes its InferenceService through its event,
and a Pending pod that does not change costs nothing. Each object is kept as the few fields
the status reads (``raw_status.pod_essentials``), as compact JSON, grouped by the Deployment
whose selector picks it; an event that changes none of those fields wakes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from kfserving_operator.api import constants as c
from kfserving_operator.operator.cache import Children, IsvcKey, decode, encode
from kfserving_operator.reconcile.failure import REVISION_LABEL
from kfserving_operator.reconcile.raw_status import (
    deployment_pods_selector,
    needs_pods,
    pod_essentials,
    replica_set_essentials,
)

# The raw children the operator's informers watch (label-selected like the others), with the
# dependency each one's being served reports (Gateway API may be missing, and appear later).
RAW_CHILD_TYPES: Final = (
    (c.APPS_API_VERSION, "Deployment", None),
    (c.HPA_API_VERSION, "HorizontalPodAutoscaler", None),
    (c.INGRESS_API_VERSION, "Ingress", None),
    (c.GATEWAY_API_VERSION, "HTTPRoute", "gateway_api_installed"),
)

# Pods and ReplicaSets of raw Deployments: an InferenceService's label and the ``app`` label
# of a raw pod template, and not a Knative revision's (whose pods carry both as well).
RAW_POD_SELECTOR: Final = f"{c.ISVC_LABEL},{c.RAW_APP_LABEL},!{REVISION_LABEL}"
RAW_POD_TYPES: Final = (("v1", "Pod"), (c.APPS_API_VERSION, "ReplicaSet"))

Objects = dict[str, tuple[dict[str, Any], ...]]
_Group = tuple[str, str]  # (namespace, app label value): the pods of one Deployment
_Name = tuple[str, str, str]  # (kind, namespace, name)


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


class RawPods:
    """Pods and ReplicaSets of raw Deployments as their informers last delivered them."""

    def __init__(self) -> None:
        self._groups: dict[_Group, dict[tuple[str, str], bytes]] = {}
        self._group_of: dict[_Name, _Group] = {}

    def __len__(self) -> int:
        return len(self._group_of)

    def put(self, obj: dict[str, Any], *, deleted: bool = False) -> IsvcKey | None:
        """Record (or forget) a pod or ReplicaSet; returns the InferenceService to look at
        again when what the status reads of it changed, else None."""
        meta = _meta(obj)
        kind = str(obj.get("kind", ""))
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        labels = meta.get("labels") or {}
        isvc = labels.get(c.ISVC_LABEL) if isinstance(labels, dict) else None
        app = labels.get(c.RAW_APP_LABEL) if isinstance(labels, dict) else None
        ident = (kind, namespace, name)
        old_group = self._group_of.get(ident)
        old = self._groups.get(old_group, {}).get((kind, name)) if old_group else None
        if old_group is not None and (deleted or old_group != (namespace, str(app))):
            self._drop(ident, old_group)
        data = None
        if not deleted and isvc is not None and app is not None:
            essentials = pod_essentials(obj) if kind == "Pod" else replica_set_essentials(obj)
            data = encode(essentials)
            group = (namespace, str(app))
            self._groups.setdefault(group, {})[(kind, name)] = data
            self._group_of[ident] = group
        if data == old or isvc is None:
            return None
        return (namespace, str(isvc))

    def _drop(self, ident: _Name, group: _Group) -> None:
        self._group_of.pop(ident, None)
        members = self._groups.get(group)
        if members is not None:
            members.pop((ident[0], ident[2]), None)
            if not members:
                del self._groups[group]

    def of_kind(self, kind: str) -> Iterator[dict[str, Any]]:
        """Every stored object of ``kind`` (an informer's relist finds deletions with it)."""
        for members in list(self._groups.values()):
            for (member_kind, _), data in list(members.items()):
                if member_kind == kind and (obj := decode(data)) is not None:
                    yield obj

    def selected(self, namespace: str, deployment: dict[str, Any]) -> tuple[
            tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]:
        """The ReplicaSets and pods that ``deployment``'s selector picks."""
        selector = deployment_pods_selector(deployment)
        if selector is None or selector[0] != c.RAW_APP_LABEL:
            return (), ()
        members = self._groups.get((namespace, selector[1]), {})
        decoded = [(kind, obj) for (kind, _), data in sorted(members.items())
                   if (obj := decode(data)) is not None]
        return (tuple(obj for kind, obj in decoded if kind == "ReplicaSet"),
                tuple(obj for kind, obj in decoded if kind == "Pod"))

    def incomplete(self, namespace: str, children: Children) -> tuple[Objects, Objects]:
        """ReplicaSets and pods by Deployment name, for every incomplete raw Deployment."""
        replica_sets: Objects = {}
        pods: Objects = {}
        for (kind, name), obj in sorted(children.raw.items()):
            if kind == "Deployment" and needs_pods(obj):
                replica_sets[name], pods[name] = self.selected(namespace, obj)
        return replica_sets, pods
