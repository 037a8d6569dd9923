"""Conversion between v1alpha2 and v1beta1 InferenceServices (the CRD conversion webhook).

Objects are stored as v1beta1. The mapping is KFServing's:

* ``spec.default.{predictor,transformer,explainer}`` <-> ``spec.{predictor,transformer,explainer}``;
* a framework's ``storageUri``, ``runtimeVersion`` and ``resources`` map one to one (pytorch
  also ``modelClassName``); a ``custom.container`` is ``containers[0]``;
* ``parallelism`` <-> ``containerConcurrency``; ``serviceAccountName``, ``minReplicas``,
  ``maxReplicas``, ``logger`` and ``batcher`` keep their names;
* ``spec.canaryTrafficPercent`` <-> ``spec.predictor.canaryTrafficPercent``;
* v1alpha2's ``nthread`` (xgboost, lightgbm) <-> a ``--nthread=N`` argument of v1beta1.

Two deliberate differences from KFServing, which lost data on the way:

* every DeploymentSpec field is converted for the transformer and the explainer too (KFServing
  dropped their logger, batcher and service account in one direction or the other), and an
  explicit ``parallelism: 0`` stays 0 rather than disappearing;
* what v1alpha2 cannot express (env, args, ports, probes, timeouts, autoscaling targets, pod
  fields, more containers, paddle, ...) is kept in the annotation
  ``serving.kubeflow.org/v1beta1-spec`` of the v1alpha2 form and put back on the way to
  v1beta1. So a read-modify-write through v1alpha2 (an old ``kubectl edit``, an old SDK's
  ``replace``) keeps fields it cannot see. Fields v1alpha2 can express always come from the
  v1alpha2 object; the annotation never reaches the stored object.

A v1alpha2 ``spec.canary`` endpoint has no v1beta1 form; the v1alpha2 validator refuses it
with KFServing's message. Conversion carries it in an annotation, so that it survives the
v1beta1 defaulter (which sees v1alpha2 requests converted) and reaches that validator.

Conversion is lossless both ways, which the apiserver relies on: server-side apply converts
an object through the version of every field manager that owns part of it (a ``kubectl
apply`` in v1alpha2 makes one), so a lossy status conversion would wipe v1beta1's status on
the operator's next status write. v1alpha2's status therefore also carries v1beta1's
``components``. Metadata is copied unchanged apart from the annotation (the apiserver refuses
a conversion that changes anything but labels and annotations). All functions are pure and
work on wire-format dicts.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlparse

from kfserving_operator.api.constants import API_VERSION, GROUP, NTHREAD_FRAMEWORKS, PREDICTOR
from kfserving_operator.api.explainer import EXPLAINER_FRAMEWORKS
from kfserving_operator.api.predictor import FRAMEWORKS
from kfserving_operator.api.v1alpha2 import V1ALPHA2_API_VERSION

JsonDict = dict[str, Any]

STASH_ANNOTATION: Final = f"{GROUP}/v1beta1-spec"
# v1alpha2's canary endpoint in the v1beta1 form: only ever seen by admission (the v1alpha2
# validator refuses a canary, so it is never stored), but the v1beta1 defaulter sees
# v1alpha2 requests converted, and the canary must come back for the validator to refuse it.
CANARY_ANNOTATION: Final = f"{GROUP}/v1alpha2-canary"
COMPONENT_NAMES: Final = ("predictor", "transformer", "explainer")
# v1beta1 predictor frameworks that v1alpha2 has too (paddle it has not).
SHARED_PREDICTORS: Final = (
    "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "pmml", "lightgbm")
SHARED_EXPLAINERS: Final = ("alibi", "aix")
NTHREAD_ARG: Final = "--nthread="
# Fields of v1alpha2's DeploymentSpec and their v1beta1 names.
DEPLOYMENT_FIELDS: Final = (
    ("serviceAccountName", "serviceAccountName"),
    ("minReplicas", "minReplicas"),
    ("maxReplicas", "maxReplicas"),
    ("parallelism", "containerConcurrency"),
    ("logger", "logger"),
    ("batcher", "batcher"),
)
# Fields of a v1alpha2 framework spec copied as they are.
FRAMEWORK_FIELDS: Final = ("storageUri", "runtimeVersion", "resources")
EXPLAINER_FIELDS: Final = ("type", "storageUri", "runtimeVersion", "resources", "config")
IMPLEMENTATION_KEYS: Final = frozenset({*FRAMEWORKS, *EXPLAINER_FRAMEWORKS, "containers"})


class ConversionError(ValueError):
    """An object that cannot be converted (wrong apiVersion, not an object)."""


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _copy_present(source: Mapping[str, Any], target: JsonDict,
                  fields: tuple[tuple[str, str], ...] | tuple[str, ...]) -> None:
    for item in fields:
        src, dst = (item, item) if isinstance(item, str) else item
        if source.get(src) is not None:
            target[dst] = copy.deepcopy(source[src])


# --------------------------------------------------------------------------------------------
# v1alpha2 -> v1beta1


def _nthread_args(spec: Mapping[str, Any]) -> list[str]:
    nthread = spec.get("nthread")
    return [f"{NTHREAD_ARG}{nthread}"] if isinstance(nthread, int) else []


def _alpha_component_to_beta(name: str, alpha: Mapping[str, Any]) -> JsonDict:
    beta: JsonDict = {}
    for field in (SHARED_PREDICTORS if name == PREDICTOR else SHARED_EXPLAINERS):
        framework = alpha.get(field)
        if not isinstance(framework, Mapping):
            continue
        if name == PREDICTOR:
            converted: JsonDict = {}
            _copy_present(framework, converted, FRAMEWORK_FIELDS)
            if field == "pytorch" and framework.get("modelClassName"):
                converted["modelClassName"] = framework["modelClassName"]
            if field in NTHREAD_FRAMEWORKS and _nthread_args(framework):
                converted["args"] = _nthread_args(framework)
        else:
            converted = {}
            _copy_present(framework, converted, EXPLAINER_FIELDS)
        beta[field] = converted
    custom = alpha.get("custom")
    if isinstance(custom, Mapping) and isinstance(custom.get("container"), Mapping):
        beta["containers"] = [copy.deepcopy(dict(custom["container"]))]
    _copy_present(alpha, beta, DEPLOYMENT_FIELDS)
    return beta


def _spec_to_beta(spec: Mapping[str, Any]) -> JsonDict:
    default = _mapping(spec.get("default"))
    beta: JsonDict = {}
    for name in COMPONENT_NAMES:
        component = default.get(name)
        if isinstance(component, Mapping):
            beta[name] = _alpha_component_to_beta(name, component)
    percent = spec.get("canaryTrafficPercent")
    if percent is not None:
        beta.setdefault(PREDICTOR, {})["canaryTrafficPercent"] = percent
    return beta


def _with_nthread(stashed: list[Any], current: object) -> list[Any]:
    """The stashed arguments, their ``--nthread=`` entries set to v1alpha2's current nthread."""
    nthread, _ = _split_nthread(current)
    result: list[Any] = []
    placed = False
    for arg in stashed:
        if isinstance(arg, str) and arg.startswith(NTHREAD_ARG):
            if nthread is not None and not placed:
                result.append(f"{NTHREAD_ARG}{nthread}")
                placed = True
            continue
        result.append(arg)
    if nthread is not None and not placed:
        result.append(f"{NTHREAD_ARG}{nthread}")
    return result


def _restore(converted: JsonDict, stash: Mapping[str, Any], nthread: bool = False) -> JsonDict:
    """Fill ``converted`` with stashed fields v1alpha2 cannot express; converted values win.

    ``nthread``: this is an xgboost or lightgbm spec, whose --nthread argument v1alpha2 holds.
    """
    result = dict(converted)
    for field, stashed in stash.items():
        if nthread and field == "args" and isinstance(stashed, list):
            # Stashed in full (order kept); nthread is v1alpha2's, so it comes from there.
            result[field] = _with_nthread(stashed, result.get(field))
            if not result[field]:
                del result[field]
        elif field not in result:
            result[field] = copy.deepcopy(stashed)
        elif isinstance(result[field], dict) and isinstance(stashed, Mapping):
            result[field] = _restore(result[field], stashed, field in NTHREAD_FRAMEWORKS)
        elif field == "containers" and isinstance(stashed, list) and result[field]:
            # containers[0] is v1alpha2's custom.container; the others only live in the stash.
            result[field] = [result[field][0], *copy.deepcopy(stashed[1:])]
    return result


def _restore_spec(converted: JsonDict, stash: Mapping[str, Any]) -> JsonDict:
    result = dict(converted)
    for name in COMPONENT_NAMES:
        if name not in result or not isinstance(stash.get(name), Mapping):
            continue  # a component removed through v1alpha2 stays removed
        stashed = dict(stash[name])
        ours = {k for k in result[name] if k in IMPLEMENTATION_KEYS}
        for key in [k for k in stashed if k in IMPLEMENTATION_KEYS]:
            if ours and key not in ours:
                del stashed[key]  # the implementation was changed through v1alpha2
        result[name] = _restore(result[name], stashed)
    return result


# Status fields both versions have (v1alpha2's schema carries v1beta1's components and
# annotations so that the status survives the conversions server-side apply makes).
STATUS_FIELDS: Final = ("observedGeneration", "conditions", "url", "address", "components",
                        "annotations")


def _set_annotations(metadata: JsonDict, annotations: dict[str, str]) -> None:
    """Put ``annotations`` into ``metadata``, touching nothing when they did not change (an
    object without annotations stays without the key)."""
    if annotations == _mapping(metadata.get("annotations")):
        return
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)


def _status_to_beta(status: Mapping[str, Any]) -> JsonDict:
    beta: JsonDict = {}
    _copy_present(status, beta, STATUS_FIELDS)
    return beta


def to_v1beta1(obj: Mapping[str, Any]) -> JsonDict:
    """The v1beta1 form of a v1alpha2 InferenceService."""
    if obj.get("apiVersion") == API_VERSION:
        return copy.deepcopy(dict(obj))
    if obj.get("apiVersion") != V1ALPHA2_API_VERSION:
        raise ConversionError(f"cannot convert apiVersion {obj.get('apiVersion')!r} to v1beta1")
    metadata = copy.deepcopy(dict(_mapping(obj.get("metadata"))))
    annotations = dict(_mapping(metadata.get("annotations")))
    stash_text = annotations.pop(STASH_ANNOTATION, None)
    canary = _mapping(obj.get("spec")).get("canary")
    if canary is not None:
        annotations[CANARY_ANNOTATION] = json.dumps(canary, sort_keys=True,
                                                    separators=(",", ":"))
    _set_annotations(metadata, annotations)
    spec = _spec_to_beta(_mapping(obj.get("spec")))
    if stash_text:
        try:
            stash = json.loads(stash_text)
        except ValueError:
            stash = None
        if isinstance(stash, Mapping):
            spec = _restore_spec(spec, stash)
    result: JsonDict = {"apiVersion": API_VERSION, "kind": obj.get("kind", "InferenceService"),
                        "metadata": metadata, "spec": spec}
    if isinstance(obj.get("status"), Mapping):
        result["status"] = _status_to_beta(obj["status"])
    return result


# --------------------------------------------------------------------------------------------
# v1beta1 -> v1alpha2


def _split_nthread(args: object) -> tuple[int | None, list[str]]:
    """``--nthread=N`` out of an argument list: (N or None, the other arguments)."""
    nthread: int | None = None
    rest: list[str] = []
    for arg in args if isinstance(args, list) else []:
        value = arg[len(NTHREAD_ARG):] if isinstance(arg, str) and arg.startswith(
            NTHREAD_ARG) else None
        if value is not None and value.isdigit():
            nthread = int(value)
        else:
            rest.append(arg)
    return nthread, rest


def _beta_component_to_alpha(name: str, beta: Mapping[str, Any]) -> JsonDict:
    alpha: JsonDict = {}
    frameworks = SHARED_PREDICTORS if name == PREDICTOR else SHARED_EXPLAINERS
    if name != "transformer":
        for field in frameworks:
            framework = beta.get(field)
            if not isinstance(framework, Mapping):
                continue
            converted: JsonDict = {}
            if name == PREDICTOR:
                _copy_present(framework, converted, FRAMEWORK_FIELDS)
                if field == "pytorch" and framework.get("modelClassName"):
                    converted["modelClassName"] = framework["modelClassName"]
                if field in NTHREAD_FRAMEWORKS:
                    nthread, _ = _split_nthread(framework.get("args"))
                    if nthread is not None:
                        converted["nthread"] = nthread
            else:
                _copy_present(framework, converted, EXPLAINER_FIELDS)
            alpha[field] = converted
            break
    containers = beta.get("containers")
    if not alpha and isinstance(containers, list) and containers:
        alpha["custom"] = {"container": copy.deepcopy(containers[0])}
    for alpha_field, beta_field in DEPLOYMENT_FIELDS:
        if beta.get(beta_field) is not None:
            alpha[alpha_field] = copy.deepcopy(beta[beta_field])
    return alpha


def _spec_to_alpha(spec: Mapping[str, Any]) -> JsonDict:
    default: JsonDict = {}
    for name in COMPONENT_NAMES:
        component = spec.get(name)
        if isinstance(component, Mapping):
            default[name] = _beta_component_to_alpha(name, component)
    alpha: JsonDict = {"default": default}
    percent = _mapping(spec.get(PREDICTOR)).get("canaryTrafficPercent")
    if percent is not None:
        alpha["canaryTrafficPercent"] = percent
    return alpha


def _unexpressed(original: Any, expressed: Any) -> Any:
    """What of ``original`` is missing or different in ``expressed`` (None when nothing)."""
    if isinstance(original, Mapping):
        if not isinstance(expressed, Mapping):
            return copy.deepcopy(dict(original))
        rest: JsonDict = {}
        for key, value in original.items():
            if key not in expressed:
                rest[key] = copy.deepcopy(value)
                continue
            if key == "args" and isinstance(value, list):
                # Only --nthread made it into v1alpha2: keep the whole list, in order.
                if _split_nthread(value)[1]:
                    rest[key] = copy.deepcopy(value)
                continue
            inner = _unexpressed(value, expressed[key])
            if inner is not None:
                rest[key] = inner
        return rest or None
    if isinstance(original, list) and isinstance(expressed, list):
        return None if original == expressed else copy.deepcopy(original)
    return None if original == expressed else copy.deepcopy(original)


def _status_to_alpha(status: Mapping[str, Any]) -> JsonDict:
    alpha: JsonDict = {}
    _copy_present(status, alpha, STATUS_FIELDS)
    components = _mapping(status.get("components"))
    default: JsonDict = {}
    for name in COMPONENT_NAMES:
        component = _mapping(components.get(name))
        if not component:
            continue
        entry: JsonDict = {}
        if component.get("latestCreatedRevision"):
            entry["name"] = component["latestCreatedRevision"]
        host = urlparse(str(component.get("url") or "")).hostname
        if host:
            entry["host"] = host
        default[name] = entry
    if default:
        alpha["default"] = default
    # v1alpha2's traffic columns: the rolled-out ("default") share and the canary share.
    traffic = [_mapping(t) for t in _mapping(components.get(PREDICTOR)).get("traffic") or []]
    previous = [t for t in traffic if t.get("tag") == "prev"]
    latest = [t for t in traffic if t.get("latestRevision")]
    if previous:
        alpha["traffic"] = sum(int(t.get("percent") or 0) for t in previous)
        alpha["canaryTraffic"] = sum(int(t.get("percent") or 0) for t in latest)
    elif latest:
        alpha["traffic"] = sum(int(t.get("percent") or 0) for t in latest)
    return alpha


def to_v1alpha2(obj: Mapping[str, Any]) -> JsonDict:
    """The v1alpha2 form of a v1beta1 InferenceService."""
    if obj.get("apiVersion") == V1ALPHA2_API_VERSION:
        return copy.deepcopy(dict(obj))
    if obj.get("apiVersion") != API_VERSION:
        raise ConversionError(f"cannot convert apiVersion {obj.get('apiVersion')!r} to v1alpha2")
    beta_spec = _mapping(obj.get("spec"))
    spec = _spec_to_alpha(beta_spec)
    metadata = copy.deepcopy(dict(_mapping(obj.get("metadata"))))
    annotations = dict(_mapping(metadata.get("annotations")))
    canary_text = annotations.pop(CANARY_ANNOTATION, None)
    if canary_text:
        with contextlib.suppress(ValueError):  # not ours to fail on: leave it out
            spec["canary"] = json.loads(canary_text)
    stash = _unexpressed(beta_spec, _spec_to_beta(spec))
    if stash:
        annotations[STASH_ANNOTATION] = json.dumps(stash, sort_keys=True, separators=(",", ":"))
    _set_annotations(metadata, annotations)
    result: JsonDict = {"apiVersion": V1ALPHA2_API_VERSION,
                        "kind": obj.get("kind", "InferenceService"),
                        "metadata": metadata, "spec": spec}
    if isinstance(obj.get("status"), Mapping):
        result["status"] = _status_to_alpha(obj["status"])
    return result


def convert(obj: Mapping[str, Any], desired_api_version: str) -> JsonDict:
    """``obj`` in ``desired_api_version`` (v1alpha2 or v1beta1)."""
    if not isinstance(obj, Mapping):
        raise ConversionError("object is not a JSON object")
    if desired_api_version == API_VERSION:
        return to_v1beta1(obj)
    if desired_api_version == V1ALPHA2_API_VERSION:
        return to_v1alpha2(obj)
    raise ConversionError(f"cannot convert to {desired_api_version!r}: serving.kubeflow.org "
                          "InferenceServices are served as v1alpha2 and v1beta1")
