"""Defaulting and validation of v1alpha2 InferenceServices (KFServing's v1alpha2 webhooks).

Both go through the v1beta1 form, so a v1alpha2 object is held to exactly the rules its
stored (v1beta1) form is: the v1alpha2 object is converted, defaulted or validated as v1beta1,
and the result or the errors are mapped back to v1alpha2 (``spec.default.predictor...``).
On top of that, v1alpha2's own rules:

* exactly one implementation per component, with KFServing's v1alpha2 messages;
* ``spec.canary`` is refused: v1beta1 has no canary endpoint;
* a new or changed ``spec.canaryTrafficPercent`` is refused the same way (KFServing refused
  any; an update that keeps the value the stored v1beta1 object already has is let through,
  so a v1alpha2 read-modify-write of an object in a v1beta1 canary still works);
* the pytorch model class defaults to ``PyTorchModel`` (v1alpha2 pytorch is always KFServing's
  pytorchserver).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Final

from pydantic import ValidationError

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.conversion import to_v1alpha2, to_v1beta1
from kfserving_operator.api.defaulting import default_inference_service
from kfserving_operator.api.field_errors import (
    FieldError,
    field_errors_from_validation_error,
    parse_inference_service,
)
from kfserving_operator.api.v1alpha2 import (
    DEFAULT_PYTORCH_MODEL_CLASS,
    InferenceServiceV1alpha2,
)
from kfserving_operator.api.validation import validate_inference_service

CANARY_NOT_SUPPORTED: Final = (
    "Canary rollout is no longer supported on v1alpha2, please convert to v1beta1 to use the "
    "feature."
)
EXACTLY_ONE: Final = {
    "predictor": ("Exactly one of [Custom, ONNX, Tensorflow, Triton, SKLearn, XGBoost, "
                  "LightGBM, PyTorch, PMML] must be specified in PredictorSpec"),
    "explainer": "Exactly one of [Custom, Alibi, AIX] must be specified in ExplainerSpec",
    "transformer": "Exactly one of [Custom] must be specified in TransformerSpec",
}

# v1beta1 error paths -> v1alpha2 paths (first match wins).
_PATH_REWRITES: Final = (
    (re.compile(r"^spec\.predictor\.canaryTrafficPercent"), "spec.canaryTrafficPercent"),
    (re.compile(r"^spec\.(predictor|transformer|explainer)\.containers\[0\]"),
     r"spec.default.\1.custom.container"),
    (re.compile(r"^spec\.(predictor|transformer|explainer)\.containerConcurrency"),
     r"spec.default.\1.parallelism"),
    (re.compile(r"^spec\.(predictor|transformer|explainer)"), r"spec.default.\1"),
)


def to_v1alpha2_path(path: str) -> str:
    """Where a v1beta1 field of a converted object sits in the v1alpha2 object."""
    for pattern, replacement in _PATH_REWRITES:
        if pattern.match(path):
            return pattern.sub(replacement, path, count=1)
    return path


def parse_v1alpha2(raw: Mapping[str, Any]) -> tuple[InferenceServiceV1alpha2 | None,
                                                     list[FieldError]]:
    try:
        return InferenceServiceV1alpha2.from_wire(raw), []
    except ValidationError as exc:
        return None, field_errors_from_validation_error(exc)


def default_v1alpha2(raw: Mapping[str, Any], config: OperatorConfig) -> dict[str, Any]:
    """The defaulted v1alpha2 object (unchanged when it does not parse: validation says why)."""
    parsed, errors = parse_v1alpha2(raw)
    if parsed is None or errors:
        return copy.deepcopy(dict(raw))
    obj = copy.deepcopy(dict(raw))
    for endpoint in ("default", "canary"):
        predictor = ((obj.get("spec") or {}).get(endpoint) or {}).get("predictor") or {}
        pytorch = predictor.get("pytorch")
        if isinstance(pytorch, dict) and not pytorch.get("modelClassName"):
            pytorch["modelClassName"] = DEFAULT_PYTORCH_MODEL_CLASS
    beta = to_v1beta1(obj)
    model, problems = parse_inference_service(beta)
    if model is None or problems:
        return obj
    defaulted = default_inference_service(model, config).to_wire()
    # Only the v1alpha2 spec changes: what v1beta1 defaults beyond it (the container name,
    # the protocol) the v1beta1 defaulter adds to the stored form itself.
    result = to_v1alpha2({**beta, "spec": defaulted["spec"]})
    spec = dict(result["spec"])
    if "canary" in obj.get("spec", {}):
        spec["canary"] = obj["spec"]["canary"]
    return {**obj, "spec": spec}


def validate_v1alpha2(raw: Mapping[str, Any], config: OperatorConfig,
                      old: Mapping[str, Any] | None = None) -> list[FieldError]:
    """Every problem of a created (``old`` None) or updated v1alpha2 InferenceService."""
    parsed, errors = parse_v1alpha2(raw)
    if parsed is None:
        return errors
    spec = parsed.spec
    if spec.canary is not None:
        errors.append(FieldError("spec.canary", CANARY_NOT_SUPPORTED))
    percent = spec.canary_traffic_percent
    if percent is not None:
        old_percent = ((old or {}).get("spec") or {}).get("canaryTrafficPercent")
        if old is None or old_percent != percent:
            errors.append(FieldError("spec.canaryTrafficPercent", CANARY_NOT_SUPPORTED))
    default = spec.default
    for name, component in (("predictor", default.predictor),
                            ("transformer", default.transformer),
                            ("explainer", default.explainer)):
        if component is not None and len(component.implementations()) != 1:
            found = ", ".join(component.implementations()) or "none"
            errors.append(FieldError(f"spec.default.{name}",
                                     f"{EXACTLY_ONE[name]}; found {found}"))
    if errors:
        return errors
    beta = to_v1beta1(raw)
    model, problems = parse_inference_service(beta)
    if model is None:
        return [FieldError(to_v1alpha2_path(p.path), p.message) for p in problems]
    defaulted = default_inference_service(model, config)
    return [FieldError(to_v1alpha2_path(p.path), p.message)
            for p in validate_inference_service(defaulted, config)]
