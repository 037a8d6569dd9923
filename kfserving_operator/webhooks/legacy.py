"""Reviews for the rest of KFServing 0.6.1's API: v1alpha2 InferenceServices, TrainedModels,
and the CRD conversion between InferenceService versions. Pure: reviews in, reviews out.

The server (``server.py``) reads what a TrainedModel review needs (its parent InferenceService
and the parent's model ConfigMap) and calls these functions.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonpatch

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.constants import APIEXTENSIONS_API_VERSION as CONVERSION_REVIEW_VERSION
from kfserving_operator.api.conversion import ConversionError, convert
from kfserving_operator.api.v1alpha2_admission import default_v1alpha2, validate_v1alpha2
from kfserving_operator.reconcile.trainedmodel import Parent, admission_errors
from kfserving_operator.webhooks.admission import (
    format_denial,
    review_response,
    review_validation,
)

Review = Mapping[str, Any]


def review_v1alpha2_defaulting(review: Review, config: OperatorConfig) -> dict[str, Any]:
    """KFServing's v1alpha2 defaulter: runtime versions, resources, the pytorch model class."""
    request = review.get("request", {})
    if request.get("operation") not in {"CREATE", "UPDATE"}:
        return review_response(review, allowed=True)
    original = request.get("object") or {}
    defaulted = default_v1alpha2(original, config)
    before = {"spec": copy.deepcopy(original.get("spec", {}))}
    after = {"spec": defaulted.get("spec", {})}
    patch = [dict(op) for op in jsonpatch.make_patch(before, after).patch]
    return review_response(review, allowed=True, patch=patch)


def review_v1alpha2_validation(review: Review, config: OperatorConfig) -> dict[str, Any]:
    """KFServing's v1alpha2 validator (canary refused), on top of the v1beta1 rules."""
    return review_validation(review, lambda obj, old: validate_v1alpha2(obj, config, old))


def trained_model_parent_name(review: Review) -> str:
    """The InferenceService a reviewed TrainedModel names ('' when it names none)."""
    obj = review.get("request", {}).get("object") or {}
    value = (obj.get("spec") or {}).get("inferenceService") if isinstance(obj, Mapping) else None
    return value if isinstance(value, str) else ""


def needs_trained_model_checks(review: Review) -> bool:
    """False for reviews that are let through without reading the cluster: anything but a
    create or a spec change (our own owner-reference writes, label edits, deletions)."""
    request = review.get("request", {})
    operation = request.get("operation")
    if operation == "CREATE":
        return True
    if operation != "UPDATE":
        return False
    obj, old = request.get("object") or {}, request.get("oldObject") or {}
    if obj.get("metadata", {}).get("deletionTimestamp"):
        return False
    return bool(obj.get("spec") != old.get("spec"))


def review_trained_model_validation(review: Review, parent: Parent, config: OperatorConfig,
                                    model_config: str | None) -> dict[str, Any]:
    """Refuse a TrainedModel its parent cannot serve, naming the field at fault."""
    if not needs_trained_model_checks(review):
        return review_response(review, allowed=True)
    request = review.get("request", {})
    obj = request.get("object") or {}
    old = request.get("oldObject") if request.get("operation") == "UPDATE" else None
    errors = admission_errors(obj, parent, config, model_config=model_config, old=old)
    if errors:
        name = obj.get("metadata", {}).get("name") or request.get("name") or ""
        return review_response(review, allowed=False, code=422,
                               message=format_denial("TrainedModel", name, errors))
    return review_response(review, allowed=True)


def review_conversion(review: Review) -> dict[str, Any]:
    """Answer an ``apiextensions.k8s.io/v1`` ConversionReview."""
    request = review.get("request") or {}
    desired = str(request.get("desiredAPIVersion") or "")
    response: dict[str, Any] = {"uid": request.get("uid", "")}
    try:
        response["convertedObjects"] = [convert(obj, desired)
                                        for obj in request.get("objects") or []]
        response["result"] = {"status": "Success"}
    except ConversionError as exc:
        response["convertedObjects"] = []
        response["result"] = {"status": "Failure", "message": str(exc)}
    return {"apiVersion": review.get("apiVersion", CONVERSION_REVIEW_VERSION),
            "kind": "ConversionReview", "response": response}
