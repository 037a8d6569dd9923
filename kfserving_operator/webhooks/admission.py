"""AdmissionReview in, AdmissionReview out: the pure part of every webhook.

The server (``server.py``) only decodes HTTP, reads what a review needs from the API (the
config, a pod's ServiceAccount and Secrets) and calls one of these functions. Defaulting
and validation are the same functions the reconciler and ``render`` use, so what is
admitted is exactly what is reconciled.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.deployment_mode import (
    mode_stamp_patch,
    mode_to_stamp,
    with_mode_annotation,
)
from kfserving_operator.api.field_errors import FieldError
from kfserving_operator.api.pipeline import default_for_admission, validate_for_admission
from kfserving_operator.api.raw_admission import mode_change_errors
from kfserving_operator.podmutation.credentials import CredentialSources
from kfserving_operator.podmutation.errors import PodMutationError
from kfserving_operator.podmutation.mutator import is_in_scope, mutate_pod, pod_patch

Review = Mapping[str, Any]


def review_response(
    review: Review,
    *,
    allowed: bool,
    message: str | None = None,
    code: int | None = None,
    patch: list[dict[str, Any]] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """An ``admission.k8s.io/v1`` AdmissionReview answering ``review``."""
    response: dict[str, Any] = {"uid": review.get("request", {}).get("uid", ""),
                                "allowed": allowed}
    if message is not None or code is not None:
        response["status"] = {
            "code": code or (200 if allowed else 422),
            "message": message or "",
            "reason": "Invalid" if not allowed else "",
        }
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    if warnings:
        response["warnings"] = warnings
    return {
        "apiVersion": review.get("apiVersion", "admission.k8s.io/v1"),
        "kind": "AdmissionReview",
        "response": response,
    }


def format_denial(kind: str, name: str, errors: list[FieldError]) -> str:
    """One message naming every field at fault, as ``kubectl apply`` will print it."""
    shown = "; ".join(str(error) for error in errors)
    return f"{kind} {name!r} is invalid: {shown}"


def review_inference_service_defaulting(review: Review, config: OperatorConfig) -> dict[str, Any]:
    """Fill the defaults into a created or updated InferenceService.

    An object that does not parse is admitted unchanged here: the validating webhook, which
    runs after every mutation, rejects it with the full list of problems.
    """
    request = review.get("request", {})
    if request.get("operation") not in {"CREATE", "UPDATE"}:
        return review_response(review, allowed=True)
    original = request.get("object") or {}
    # A new InferenceService without the mode annotation gets the configured default, so
    # a later change of the default moves nothing; validation sees the stamped object, as
    # the validating webhook will.
    stamp = (mode_to_stamp(original, config.deploy.default_deployment_mode)
             if request.get("operation") == "CREATE" else None)
    admitted = original if stamp is None else with_mode_annotation(original, stamp)
    spec = default_for_admission(admitted, config)
    if spec is None:
        return review_response(review, allowed=True)
    patch = [] if stamp is None else [mode_stamp_patch(original, stamp)]
    if spec != original.get("spec"):
        # Defaults only ever add to the spec: one operation that sets the whole defaulted
        # spec says the same as a field-by-field diff, and costs nothing to compute.
        operation = "replace" if "spec" in original else "add"
        patch.append({"op": operation, "path": "/spec", "value": spec})
    return review_response(review, allowed=True, patch=patch or None)


def review_validation(review: Review,
                      validate: Callable[[dict[str, Any], dict[str, Any] | None],
                                         list[FieldError]]) -> dict[str, Any]:
    """The validating webhooks' common shell: CREATE and UPDATE only, never an object on its
    way out, a 422 naming every field at fault. ``validate(obj, old)`` gets the old object
    on UPDATE."""
    request = review.get("request", {})
    if request.get("operation") not in {"CREATE", "UPDATE"}:
        return review_response(review, allowed=True)
    obj = request.get("object") or {}
    if obj.get("metadata", {}).get("deletionTimestamp"):
        # An object on its way out may only be losing finalizers: never block that.
        return review_response(review, allowed=True)
    old = request.get("oldObject") if request.get("operation") == "UPDATE" else None
    errors = validate(obj, old)
    if errors:
        name = obj.get("metadata", {}).get("name") or request.get("name") or ""
        return review_response(
            review, allowed=False, code=422,
            message=format_denial("InferenceService", name, errors),
        )
    return review_response(review, allowed=True)


def review_inference_service_validation(
    review: Review, config: OperatorConfig
) -> dict[str, Any]:
    """Reject an InferenceService that breaks any rule; never block a deletion."""
    return review_validation(
        review,
        lambda obj, old: validate_for_admission(obj, config) + mode_change_errors(obj, old, config))


def review_pod_mutation(
    review: Review, config: OperatorConfig, credentials: CredentialSources
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Inject the storage initializer, credentials and agent; return the review and notes."""
    request = review.get("request", {})
    pod = request.get("object") or {}
    if request.get("operation") != "CREATE" or not is_in_scope(pod):
        return review_response(review, allowed=True), ()
    try:
        result = mutate_pod(pod, config, credentials, namespace=request.get("namespace"))
    except PodMutationError as exc:
        return review_response(review, allowed=False, code=400, message=str(exc)), ()
    return review_response(review, allowed=True, patch=pod_patch(pod, result.pod)), result.notes
