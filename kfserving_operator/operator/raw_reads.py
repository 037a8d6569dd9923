"""What a raw-mode reconcile reads beyond the watch cache: the ReplicaSets and pods of a
Deployment that is not complete and available, so the status can say why (image pull, crash
loop, OOM, storage initializer, unschedulable). Healthy InferenceServices cost no request.

Pod problems do not change the Deployment, so nothing would wake the reconcile when a pod
starts crashing: while a Deployment is incomplete its InferenceService is looked at again
every ``RECHECK_SECONDS``.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from kfserving_operator.api import constants as c
from kfserving_operator.k8s.api import KubeApi, KubeError
from kfserving_operator.operator.cache import Children
from kfserving_operator.reconcile.raw_status import deployment_pods_selector, needs_pods

logger = logging.getLogger(__name__)

RECHECK_SECONDS: Final = 10.0

# The raw children the operator's informers watch (label-selected like the others), with the
# dependency each one's being served reports (Gateway API may be missing, and appear later).
RAW_CHILD_TYPES: Final = (
    (c.APPS_API_VERSION, "Deployment", None),
    (c.HPA_API_VERSION, "HorizontalPodAutoscaler", None),
    (c.INGRESS_API_VERSION, "Ingress", None),
    (c.GATEWAY_API_VERSION, "HTTPRoute", "gateway_api_installed"),
)

Objects = dict[str, tuple[dict[str, Any], ...]]


async def read_incomplete(api: KubeApi, namespace: str,
                          children: Children) -> tuple[Objects, Objects]:
    """ReplicaSets and pods by Deployment name, for every incomplete raw Deployment."""
    replica_sets: Objects = {}
    pods: Objects = {}
    for (kind, name), obj in sorted(children.raw.items()):
        if kind != "Deployment" or not needs_pods(obj):
            continue
        selector = deployment_pods_selector(obj)
        if selector is None:
            continue
        try:
            replica_sets[name] = tuple(await api.list("apps/v1", "ReplicaSet", namespace,
                                                      label_equals=selector))
            pods[name] = tuple(await api.list("v1", "Pod", namespace, label_equals=selector))
        except KubeError as exc:
            logger.debug("%s/%s: cannot read its ReplicaSets and pods: %s", namespace, name,
                         exc)
    return replica_sets, pods
