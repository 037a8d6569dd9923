"""Which way an InferenceService is served: Serverless (Knative) or RawDeployment.

The annotation ``serving.kubeflow.org/deploymentMode`` chooses; KServe's later spellings
``Knative`` and ``Standard`` mean the same. Without it, ``deploy.defaultDeploymentMode`` of the
config decides. Once the operator has served an InferenceService, ``status.deploymentMode``
records the mode and wins, so changing the config default moves no existing
InferenceService; the validating webhook refuses an annotation that would change it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from kfserving_operator.api.constants import (
    DEPLOYMENT_MODE_ANNOTATION,
    DEPLOYMENT_MODE_SYNONYMS,
    RAW_DEPLOYMENT,
    SERVERLESS,
)

MODE_SPELLINGS: Final = (SERVERLESS, RAW_DEPLOYMENT, *DEPLOYMENT_MODE_SYNONYMS)


def normalise_mode(value: object) -> str | None:
    """``Serverless`` or ``RawDeployment`` for any accepted spelling, else None."""
    if not isinstance(value, str):
        return None
    if value in (SERVERLESS, RAW_DEPLOYMENT):
        return value
    return DEPLOYMENT_MODE_SYNONYMS.get(value)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def annotated_mode(obj: Mapping[str, Any]) -> str | None:
    """The mode the object's annotation asks for (None when absent or not a mode)."""
    annotations = _mapping(_mapping(obj.get("metadata")).get("annotations"))
    return normalise_mode(annotations.get(DEPLOYMENT_MODE_ANNOTATION))


def recorded_mode(obj: Mapping[str, Any]) -> str | None:
    """The mode the operator recorded in ``status.deploymentMode``, if any."""
    return normalise_mode(_mapping(obj.get("status")).get("deploymentMode"))


def resolve_mode(obj: Mapping[str, Any], default: str) -> str:
    """The mode to serve ``obj`` (a wire object) in: recorded, then annotated, then default."""
    return recorded_mode(obj) or annotated_mode(obj) or normalise_mode(default) or SERVERLESS


def mode_change_error(obj: Mapping[str, Any], old: Mapping[str, Any] | None,
                      default: str) -> str | None:
    """Why an update of ``old`` to ``obj`` would change the deployment mode, or None."""
    if old is None:
        return None
    before = resolve_mode(old, default)
    wanted = annotated_mode(obj) or recorded_mode(obj) or normalise_mode(default) or SERVERLESS
    if wanted == before:
        return None
    return (f"the deployment mode of an existing InferenceService cannot change: it is served "
            f"as {before}, and this update asks for {wanted}; delete and recreate the "
            f"InferenceService to change {DEPLOYMENT_MODE_ANNOTATION}")
