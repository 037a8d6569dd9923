"""TrainedModels of one InferenceService: their model config, their status, their owner.

Pure, like ``plan.py``: ``plan_trained_models`` takes the parent InferenceService (or None),
every TrainedModel naming it, the operator config and the time, and returns the ``models.json``
to write, each TrainedModel's status and the metadata each TrainedModel should carry. The same
inputs give an equal plan, so an unchanged world needs no write.

The model config is level-based: it lists exactly the TrainedModels that fit, computed from
all of them every time. A TrainedModel deleted while the operator was down is therefore gone
from ``models.json`` after the next start, without a finalizer.

Which models fit: TrainedModels are taken oldest first (creation time, then name); a model is
written when its parent is a multi-model server that supports its framework, the memory of the
models written so far plus its own stays within the predictor's memory limit (KFServing's
MemoryResourceAvailable rule), and the ConfigMap stays under the apiserver's 1 MiB limit.
Memory is immutable, so a model once written is not displaced by a newer one.

``admission_errors`` applies the same parent checks at admission, so a TrainedModel that
could never be served is refused with the field at fault.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from pydantic import ValidationError

from kfserving_operator.api.components import CUSTOM, PROTOCOL_V2
from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.constants import (
    API_VERSION,
    FALSE,
    KIND,
    REASON_INVALID_SPEC,
    model_config_name,
)
from kfserving_operator.api.defaulting import predictor_server_config
from kfserving_operator.api.field_errors import FieldError, field_errors_from_validation_error
from kfserving_operator.api.inference_service import InferenceService
from kfserving_operator.api.pipeline import parse_and_default
from kfserving_operator.api.quantity import QuantityError, parse_quantity
from kfserving_operator.api.trained_model import (
    FRAMEWORK_SUPPORTED,
    INFERENCE_SERVICE_READY,
    IS_MMS_PREDICTOR,
    MEMORY_RESOURCE_AVAILABLE,
    MODEL_CONFIGURED,
    PARENT_LABEL,
    TrainedModel,
)
from kfserving_operator.api.values import quantity_error
from kfserving_operator.reconcile.common import JsonDict, format_time, mapping, text
from kfserving_operator.reconcile.conditions import (
    TRUE,
    UNKNOWN,
    Cond,
    finalize_conditions,
    ready_condition,
)
from kfserving_operator.reconcile.containers import (
    MULTI_MODEL_SERVER_ENV,
    is_multi_model,
    predictor_protocol,
    storage_uri,
)
from kfserving_operator.reconcile.knative import model_config_map
from kfserving_operator.reconcile.modelconfig import (
    CONFIGMAP_MAX_BYTES,
    MODELS_KEY,
    ModelEntry,
    empty_size,
    entry_size,
    model_names,
    render_models,
)

# The agent of KFServing 0.6 pulls from these (reference: its storage providers).
AGENT_STORAGE_PREFIXES: Final = ("gs://", "s3://", "http://", "https://")
# KFServing's TrainedModel name rule: the name is a path segment of the model's URLs.
TM_NAME_PATTERN: Final = r"^[a-zA-Z0-9_-]+$"
_TM_NAME_RE: Final = re.compile(TM_NAME_PATTERN)

REASON_PARENT_NOT_FOUND: Final = "InferenceServiceNotFound"
REASON_PARENT_INVALID: Final = "InferenceServiceInvalid"
REASON_PARENT_NOT_READY: Final = "InferenceServiceNotReady"
REASON_NOT_MMS: Final = "IsNotMMSPredictor"
REASON_FRAMEWORK: Final = "FrameworkNotSupported"
REASON_MEMORY: Final = "MemoryResourceNotAvailable"
REASON_CONFIG_FULL: Final = "ModelConfigFull"


# --------------------------------------------------------------------------------------------
# The parent


@dataclass(frozen=True)
class Parent:
    """What a TrainedModel depends on about its InferenceService."""

    name: str
    namespace: str
    isvc: InferenceService | None  # None: it does not exist, or its spec is invalid
    raw: Mapping[str, Any] | None
    invalid: str = ""  # why the spec is invalid

    @property
    def exists(self) -> bool:
        return self.raw is not None

    def not_multi_model_reason(self, config: OperatorConfig) -> str | None:
        """Why the predictor cannot take TrainedModels, or None when it can."""
        if self.isvc is None:
            return None
        predictor = self.isvc.spec.predictor
        if is_multi_model(predictor, config):
            return None
        impl = predictor.implementation()
        what = f"InferenceService {self.name!r}"
        if impl is None:
            return f"{what} has no single predictor implementation"
        if storage_uri(predictor) is not None:
            return (f"{what} serves one model (its predictor has a storageUri); a multi-model "
                    f"predictor has no storageUri")
        if impl.name == CUSTOM:
            return (f"{what}'s custom predictor does not set {MULTI_MODEL_SERVER_ENV}=true on "
                    f"its first container")
        return (f"{what}'s {impl.name} predictor ({self.server_name(config)}) is not a "
                f"multi-model server")

    def server_name(self, config: OperatorConfig) -> str:
        if self.isvc is None:
            return ""
        impl = self.isvc.spec.predictor.implementation()
        if impl is None or impl.name == CUSTOM:
            return "custom"
        server = predictor_server_config(impl.name, impl.spec, config)
        return server.image

    def frameworks(self, config: OperatorConfig) -> tuple[str, ...] | None:
        """Frameworks the predictor serves (None: any, a custom server decides itself)."""
        if self.isvc is None:
            return ()
        impl = self.isvc.spec.predictor.implementation()
        if impl is None:
            return ()
        if impl.name == CUSTOM:
            return None
        server = predictor_server_config(impl.name, impl.spec, config)
        return tuple(server.supported_frameworks)

    def memory_limit(self) -> Decimal | None:
        """The model container's memory limit (defaulted), or None when it has none."""
        if self.isvc is None:
            return None
        impl = self.isvc.spec.predictor.implementation()
        if impl is None:
            return None
        resources = impl.spec.resources
        limit = (resources.limits or {}).get("memory") if resources is not None else None
        if limit is None:
            return None
        try:
            return parse_quantity(limit)
        except QuantityError:
            return None

    def uid(self) -> str:
        return str(mapping(mapping(self.raw).get("metadata")).get("uid") or "")

    def being_deleted(self) -> bool:
        return bool(mapping(mapping(self.raw).get("metadata")).get("deletionTimestamp"))

    def ready(self) -> Cond:
        for item in mapping(mapping(self.raw).get("status")).get("conditions") or []:
            cond = mapping(item)
            if cond.get("type") == "Ready":
                status = str(cond.get("status") or UNKNOWN)
                if status == TRUE:
                    return Cond(INFERENCE_SERVICE_READY, TRUE)
                detail = text(cond.get("message")) or text(cond.get("reason")) or "not ready"
                return Cond(INFERENCE_SERVICE_READY, FALSE, REASON_PARENT_NOT_READY,
                            f"InferenceService {self.name!r} is not ready: {detail}")
        return Cond(INFERENCE_SERVICE_READY, FALSE, REASON_PARENT_NOT_READY,
                    f"InferenceService {self.name!r} has not reported readiness yet")

    def model_path(self, model: str) -> str:
        if self.isvc is not None and predictor_protocol(self.isvc.spec.predictor) == PROTOCOL_V2:
            return f"/v2/models/{model}/infer"
        return f"/v1/models/{model}:predict"

    def url(self) -> str | None:
        return text(mapping(mapping(self.raw).get("status")).get("url"))

    def address(self) -> str | None:
        status = mapping(mapping(self.raw).get("status"))
        return text(mapping(status.get("address")).get("url"))


def read_parent(name: str, namespace: str, raw: Mapping[str, Any] | None,
                config: OperatorConfig) -> Parent:
    """The parent as the TrainedModel logic sees it (parsed and defaulted like admission)."""
    if raw is None:
        return Parent(name, namespace, None, None)
    isvc, errors = parse_and_default(raw, config)
    if isvc is None:
        shown = "; ".join(str(error) for error in errors[:3]) or "invalid spec"
        return Parent(name, namespace, None, raw, invalid=shown)
    return Parent(name, namespace, isvc, raw)


def owner_reference(parent: Parent) -> JsonDict:
    """A TrainedModel's reference to its InferenceService: garbage collection deletes the
    TrainedModels when the InferenceService goes, even while the operator is down."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": parent.name,
        "uid": parent.uid(),
        "blockOwnerDeletion": True,
    }


# --------------------------------------------------------------------------------------------
# Admission


def tm_field_errors(raw: Mapping[str, Any]) -> tuple[TrainedModel | None, list[FieldError]]:
    """Parse a TrainedModel and check what needs no cluster: name, storage URI, memory."""
    try:
        tm = TrainedModel.from_wire(raw)
    except ValidationError as exc:
        return None, field_errors_from_validation_error(exc)
    errors: list[FieldError] = []
    name = tm.metadata.name or ""
    if name and not _TM_NAME_RE.match(name):
        errors.append(FieldError(
            "metadata.name",
            "a TrainedModel name is a path segment of the model's URLs: it must consist of "
            f"alphanumeric characters, '_' or '-' ({TM_NAME_PATTERN}); got {name!r}"))
    uri = tm.spec.model.storage_uri
    if not uri.startswith(AGENT_STORAGE_PREFIXES) or not uri.split("://", 1)[-1].strip("/"):
        errors.append(FieldError(
            "spec.model.storageUri",
            "the model agent pulls from URIs starting with one of "
            f"{', '.join(AGENT_STORAGE_PREFIXES)}; got {uri!r}"))
    problem = quantity_error(tm.spec.model.memory)
    if problem:
        errors.append(FieldError("spec.model.memory", problem))
    else:
        if parse_quantity(tm.spec.model.memory) <= 0:
            errors.append(FieldError("spec.model.memory",
                                     f"must be greater than zero; got {tm.spec.model.memory!r}"))
    return tm, errors


def admission_errors(raw: Mapping[str, Any], parent: Parent, config: OperatorConfig, *,
                     model_config: str | None, old: Mapping[str, Any] | None) -> list[FieldError]:
    """Every reason to refuse a created or updated TrainedModel, with the field at fault."""
    tm, errors = tm_field_errors(raw)
    if tm is None:
        return errors
    path = "spec.inferenceService"
    if not parent.exists:
        errors.append(FieldError(path, f"InferenceService {parent.name!r} does not exist in "
                                       f"namespace {parent.namespace!r}"))
    elif parent.isvc is None:
        errors.append(FieldError(path, f"InferenceService {parent.name!r} is invalid: "
                                       f"{parent.invalid}"))
    else:
        why = parent.not_multi_model_reason(config)
        if why:
            errors.append(FieldError(path, f"must name a multi-model InferenceService: {why}"))
        else:
            frameworks = parent.frameworks(config)
            framework = tm.spec.model.framework
            if frameworks is not None and framework not in frameworks:
                errors.append(FieldError(
                    "spec.model.framework",
                    f"must be one of [{', '.join(frameworks)}], the frameworks InferenceService "
                    f"{parent.name!r}'s model server ({parent.server_name(config)}) supports; "
                    f"got {framework!r}"))
    if old is None and tm.name in model_names(model_config):
        errors.append(FieldError(
            "metadata.name",
            f"a model named {tm.name!r} is already in ConfigMap "
            f"{model_config_name(parent.name)} of InferenceService {parent.name!r}; model "
            "names must be unique in an InferenceService's model config"))
    if old is not None:
        old_memory = mapping(mapping(old.get("spec")).get("model")).get("memory")
        if old_memory is not None and not _same_quantity(old_memory, tm.spec.model.memory):
            errors.append(FieldError(
                "spec.model.memory",
                f"is immutable (the model's place on its server was reserved with it): was "
                f"{old_memory!r}, got {tm.spec.model.memory!r}; delete and recreate the "
                "TrainedModel to change it"))
    return errors


def _same_quantity(a: object, b: object) -> bool:
    try:
        return parse_quantity(str(a)) == parse_quantity(str(b))
    except QuantityError:
        return str(a) == str(b)


# --------------------------------------------------------------------------------------------
# Reconcile


@dataclass(frozen=True)
class TrainedModelPlan:
    """What to write for the TrainedModels of one InferenceService."""

    # The model ConfigMap to apply (complete: labels, owner, data), or None to leave it alone.
    config_map: JsonDict | None
    # TrainedModel name -> its complete new status.
    statuses: dict[str, JsonDict] = field(default_factory=dict)
    # TrainedModel name -> the metadata it should carry (owner reference, parent label), for
    # those that do not carry it yet.
    metadata: dict[str, JsonDict] = field(default_factory=dict)


def _created(raw: Mapping[str, Any]) -> tuple[str, str]:
    meta = mapping(raw.get("metadata"))
    return (str(meta.get("creationTimestamp") or ""), str(meta.get("name") or ""))


def _needs_metadata(raw: Mapping[str, Any], parent: Parent) -> bool:
    meta = mapping(raw.get("metadata"))
    labels = mapping(meta.get("labels"))
    refs = [mapping(ref) for ref in meta.get("ownerReferences") or []]
    owned = any(ref.get("uid") == parent.uid() and ref.get("kind") == KIND for ref in refs)
    return not owned or labels.get(PARENT_LABEL) != parent.name


def _orphaned(raw: Mapping[str, Any], parent: Parent) -> bool:
    """True when the TrainedModel's owner is gone: garbage collection is about to delete it."""
    meta = mapping(raw.get("metadata"))
    if meta.get("deletionTimestamp"):
        return True
    for ref in meta.get("ownerReferences") or []:
        ref = mapping(ref)
        if ref.get("kind") == KIND and ref.get("name") == parent.name:
            return not parent.exists or ref.get("uid") != parent.uid()
    return False


def _status(raw: Mapping[str, Any], conditions: Sequence[Cond], parent: Parent, name: str,
            now: str) -> JsonDict:
    ready = ready_condition(conditions)
    previous = mapping(raw.get("status")).get("conditions") or []
    status: JsonDict = {
        "conditions": finalize_conditions([*conditions, ready], previous, now),
    }
    generation = mapping(raw.get("metadata")).get("generation")
    if isinstance(generation, int):
        status["observedGeneration"] = generation
    url, address = parent.url(), parent.address()
    if url:
        status["url"] = url.rstrip("/") + parent.model_path(name)
    if address:
        status["address"] = {"url": address.rstrip("/") + parent.model_path(name)}
    return status


def _unknown(type_: str, reason: str, message: str) -> Cond:
    return Cond(type_, UNKNOWN, reason, message)


def plan_trained_models(parent: Parent, trained_models: Sequence[Mapping[str, Any]],
                        config: OperatorConfig, now: datetime, *,
                        capacity: int = CONFIGMAP_MAX_BYTES) -> TrainedModelPlan:
    """The model config and statuses for every TrainedModel naming ``parent``."""
    stamp = format_time(now)
    if parent.exists and parent.being_deleted():
        return TrainedModelPlan(None)  # the TrainedModels go with it
    live = [tm for tm in trained_models if not _orphaned(tm, parent)]
    statuses: dict[str, JsonDict] = {}
    metadata: dict[str, JsonDict] = {}
    entries: list[ModelEntry] = []
    mms_reason = parent.not_multi_model_reason(config) if parent.isvc is not None else None
    frameworks = parent.frameworks(config)
    memory_limit = parent.memory_limit()
    used_memory = Decimal(0)
    used_bytes = empty_size()
    cm_name = model_config_name(parent.name)
    for raw in sorted(live, key=_created):
        name = str(mapping(raw.get("metadata")).get("name") or "")
        if parent.exists and parent.isvc is not None and _needs_metadata(raw, parent):
            metadata[name] = {"labels": {PARENT_LABEL: parent.name},
                              "ownerReferences": [owner_reference(parent)]}
        tm, problems = tm_field_errors(raw)
        conditions: list[Cond] = []
        if tm is None or problems:
            message = "; ".join(str(p) for p in problems) or "invalid spec"
            for type_ in (FRAMEWORK_SUPPORTED, IS_MMS_PREDICTOR, MEMORY_RESOURCE_AVAILABLE):
                conditions.append(_unknown(type_, REASON_INVALID_SPEC, message))
            conditions.append(parent.ready() if parent.exists else Cond(
                INFERENCE_SERVICE_READY, FALSE, REASON_PARENT_NOT_FOUND,
                f"InferenceService {parent.name!r} does not exist"))
            conditions.append(Cond(MODEL_CONFIGURED, FALSE, REASON_INVALID_SPEC, message))
            statuses[name] = _status(raw, conditions, parent, name, stamp)
            continue
        if not parent.exists or parent.isvc is None:
            reason = REASON_PARENT_NOT_FOUND if not parent.exists else REASON_PARENT_INVALID
            message = (f"InferenceService {parent.name!r} does not exist in namespace "
                       f"{parent.namespace!r}" if not parent.exists else
                       f"InferenceService {parent.name!r} is invalid: {parent.invalid}")
            conditions = [
                Cond(INFERENCE_SERVICE_READY, FALSE, reason, message),
                _unknown(IS_MMS_PREDICTOR, reason, message),
                _unknown(FRAMEWORK_SUPPORTED, reason, message),
                _unknown(MEMORY_RESOURCE_AVAILABLE, reason, message),
                Cond(MODEL_CONFIGURED, FALSE, reason, message),
            ]
            statuses[name] = _status(raw, conditions, parent, name, stamp)
            continue
        conditions.append(parent.ready())
        framework = tm.spec.model.framework
        framework_ok = frameworks is None or framework in frameworks
        if framework_ok:
            conditions.append(Cond(FRAMEWORK_SUPPORTED, TRUE))
        else:
            conditions.append(Cond(
                FRAMEWORK_SUPPORTED, FALSE, REASON_FRAMEWORK,
                f"InferenceService {parent.name!r} ({parent.server_name(config)}) serves "
                f"[{', '.join(frameworks or ())}], not {framework!r}"))
        if mms_reason:
            conditions.append(Cond(IS_MMS_PREDICTOR, FALSE, REASON_NOT_MMS, mms_reason))
            conditions.append(_unknown(MEMORY_RESOURCE_AVAILABLE, REASON_NOT_MMS, mms_reason))
            conditions.append(Cond(MODEL_CONFIGURED, FALSE, REASON_NOT_MMS, mms_reason))
            statuses[name] = _status(raw, conditions, parent, name, stamp)
            continue
        conditions.append(Cond(IS_MMS_PREDICTOR, TRUE))
        memory = parse_quantity(tm.spec.model.memory)
        entry = ModelEntry(name, tm.spec.model.storage_uri, framework, tm.spec.model.memory)
        if not framework_ok:
            conditions.append(_unknown(MEMORY_RESOURCE_AVAILABLE, REASON_FRAMEWORK,
                                       "not reserved: the framework is not supported"))
            conditions.append(Cond(MODEL_CONFIGURED, FALSE, REASON_FRAMEWORK,
                                   f"not written to ConfigMap {cm_name}: the framework is not "
                                   "supported"))
        elif memory_limit is None or used_memory + memory > memory_limit:
            limit_text = "no memory limit" if memory_limit is None else (
                f"a memory limit of {_format_bytes(memory_limit)}")
            message = (f"needs {tm.spec.model.memory}, but the predictor of InferenceService "
                       f"{parent.name!r} has {limit_text} and its models written so far use "
                       f"{_format_bytes(used_memory)}")
            conditions.append(Cond(MEMORY_RESOURCE_AVAILABLE, FALSE, REASON_MEMORY, message))
            conditions.append(Cond(MODEL_CONFIGURED, FALSE, REASON_MEMORY,
                                   f"not written to ConfigMap {cm_name}: {message}"))
        elif used_bytes + entry_size(entry) > capacity:
            conditions.append(Cond(MEMORY_RESOURCE_AVAILABLE, TRUE))
            conditions.append(Cond(
                MODEL_CONFIGURED, FALSE, REASON_CONFIG_FULL,
                f"ConfigMap {cm_name} is full: adding this model ({entry_size(entry)} bytes) "
                f"would take its data over the {capacity}-byte limit ({used_bytes} bytes "
                "used)"))
        else:
            used_memory += memory
            used_bytes += entry_size(entry)
            entries.append(entry)
            conditions.append(Cond(MEMORY_RESOURCE_AVAILABLE, TRUE))
            conditions.append(Cond(MODEL_CONFIGURED, TRUE))
        statuses[name] = _status(raw, conditions, parent, name, stamp)
    config_map = None
    if parent.isvc is not None and mms_reason is None:
        config_map = model_config_map(parent.isvc)
        config_map["data"] = {MODELS_KEY: render_models(entries)}
    return TrainedModelPlan(config_map, statuses, metadata)


def _format_bytes(value: Decimal) -> str:
    for suffix, factor in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value >= factor and value % factor == 0:
            return f"{int(value // factor)}{suffix}"
    return f"{value.normalize():f}"
