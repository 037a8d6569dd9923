"""Small helpers every builder shares: owner references, labels, annotations, time stamps.

Everything here is pure and returns fresh plain dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from kfserving_operator.api.constants import (
    API_VERSION,
    AUTOSCALING_MAX_SCALE_ANNOTATION,
    AUTOSCALING_MIN_SCALE_ANNOTATION,
    ISVC_LABEL,
    KIND,
    STORAGE_INITIALIZER_SOURCE_URI_ANNOTATION,
    VISIBILITY_CLUSTER_LOCAL,
    VISIBILITY_LABEL,
)
from kfserving_operator.api.inference_service import InferenceService

JsonDict = dict[str, Any]

LAST_APPLIED_ANNOTATION: Final = "kubectl.kubernetes.io/last-applied-configuration"
LEGACY_MIN_SCALE_ANNOTATION: Final = "autoscaling.knative.dev/minScale"
LEGACY_MAX_SCALE_ANNOTATION: Final = "autoscaling.knative.dev/maxScale"

# isvc annotations that are never copied to children: the spec owns the scale bounds (in both
# spellings, since Knative rejects a template that carries both), the storage URI is computed,
# and kubectl's copy of the object would only bloat every revision.
DISALLOWED_ANNOTATIONS: Final = frozenset(
    {
        LAST_APPLIED_ANNOTATION,
        LEGACY_MIN_SCALE_ANNOTATION,
        LEGACY_MAX_SCALE_ANNOTATION,
        AUTOSCALING_MIN_SCALE_ANNOTATION,
        AUTOSCALING_MAX_SCALE_ANNOTATION,
        STORAGE_INITIALIZER_SOURCE_URI_ANNOTATION,
    }
)


def owner_reference(isvc: InferenceService) -> JsonDict:
    """The controller ownerReference every child carries (garbage collection, watches)."""
    ref: JsonDict = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": isvc.name,
        "uid": isvc.metadata.uid or "",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return ref


def isvc_labels(isvc: InferenceService) -> dict[str, str]:
    """The isvc's labels plus ``serving.kubeflow.org/inferenceservice: <name>``."""
    labels = dict(isvc.labels)
    labels[ISVC_LABEL] = isvc.name
    return labels


def child_annotations(isvc: InferenceService) -> dict[str, str]:
    """The isvc's annotations without the ones children must not inherit."""
    return {k: v for k, v in isvc.annotations.items() if k not in DISALLOWED_ANNOTATIONS}


def is_cluster_local(isvc: InferenceService) -> bool:
    """True when the isvc asks to be reachable only inside the cluster."""
    return isvc.labels.get(VISIBILITY_LABEL) == VISIBILITY_CLUSTER_LOCAL


def format_time(now: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix and whole seconds, as Kubernetes writes times."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def mapping(value: object) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one (tolerant reading of observed objects)."""
    return value if isinstance(value, Mapping) else {}


def sequence(value: object) -> list[Any]:
    """``value`` when it is a list, else an empty list."""
    return list(value) if isinstance(value, list) else []


def text(value: object) -> str | None:
    """``value`` when it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def is_subset(desired: Any, observed: Any) -> bool:
    """True when everything in ``desired`` is present and equal in ``observed``.

    Dicts may carry extra keys (server or Knative defaults); lists must match element-wise.
    """
    if isinstance(desired, dict):
        if not isinstance(observed, dict):
            return False
        return all(k in observed and is_subset(v, observed[k]) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(observed, list) or len(desired) != len(observed):
            return False
        return all(is_subset(d, o) for d, o in zip(desired, observed, strict=True))
    return bool(desired == observed)
