"""Which way an InferenceService is served: Serverless (Knative) or RawDeployment.

The annotation ``serving.kubeflow.org/deploymentMode`` chooses; KServe's later spellings
``Knative`` and ``Standard`` mean the same. Without it, ``deploy.defaultDeploymentMode`` of the
config decides. The defaulting webhook stamps that default into the annotation of an
InferenceService created without one, so the mode is fixed from admission on. Once the operator
has served an InferenceService, ``status.deploymentMode`` records the mode and wins, so
changing the config default moves no existing InferenceService (not even one created before
the webhook stamped); the validating webhook refuses an annotation that would change it.
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


def mode_to_stamp(obj: Mapping[str, Any], default: str) -> str | None:
    """The mode to write into the annotation of ``obj`` (a wire object being created): the
    config's ``default`` when it has no annotation; None when it has one (a misspelt one is
    the validating webhook's to refuse)."""
    annotations = _mapping(obj.get("metadata")).get("annotations")
    if isinstance(annotations, Mapping) and DEPLOYMENT_MODE_ANNOTATION in annotations:
        return None
    return normalise_mode(default) or SERVERLESS


def mode_stamp_patch(obj: Mapping[str, Any], mode: str) -> dict[str, Any]:
    """The JSON Patch operation that adds the annotation ``mode`` to ``obj``."""
    if not isinstance(_mapping(obj.get("metadata")).get("annotations"), Mapping):
        return {"op": "add", "path": "/metadata/annotations",
                "value": {DEPLOYMENT_MODE_ANNOTATION: mode}}
    key = DEPLOYMENT_MODE_ANNOTATION.replace("~", "~0").replace("/", "~1")
    return {"op": "add", "path": f"/metadata/annotations/{key}", "value": mode}


def with_mode_annotation(obj: Mapping[str, Any], mode: str) -> dict[str, Any]:
    """``obj`` as it is after ``mode_stamp_patch``."""
    metadata = dict(_mapping(obj.get("metadata")))
    metadata["annotations"] = {**_mapping(metadata.get("annotations")),
                               DEPLOYMENT_MODE_ANNOTATION: mode}
    return {**obj, "metadata": metadata}


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
