"""The reconcile entry point: from an InferenceService and what exists, to what to do.

``plan_reconcile`` is pure (no I/O, no clock, no kopf): the operator shell gathers the
observed children, calls it, applies ``Plan.apply`` in order, deletes ``Plan.delete``,
writes ``Plan.status`` and posts ``Plan.events``. The same inputs always give an equal plan,
so an unchanged world gives the same status dict and no write is needed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.constants import (
    COMPONENTS,
    FALSE,
    KNATIVE_API_VERSION,
    PREDICTOR,
    RAW_DEPLOYMENT,
    READY,
    REASON_INVALID_SPEC,
    TRANSFORMER,
    knative_service_name,
)
from kfserving_operator.api.field_errors import FieldError
from kfserving_operator.api.pipeline import parse_and_default
from kfserving_operator.api.raw_validation import isvc_mode
from kfserving_operator.reconcile.common import JsonDict, format_time, mapping, text
from kfserving_operator.reconcile.conditions import (
    REASON_INTERNAL_ERROR,
    TRUE,
    Cond,
    component_conditions,
    component_title,
    finalize_conditions,
    ingress_condition,
    ready_condition,
    ready_type,
)
from kfserving_operator.reconcile.failure import (
    RevisionFailure,
    condition,
    keep_better,
    revision_failure,
)
from kfserving_operator.reconcile.istio import (
    external_name_service,
    service_host,
    url_scheme,
    virtual_service,
)
from kfserving_operator.reconcile.knative import knative_service
from kfserving_operator.reconcile.status import address_url, component_status, stored_status
from kfserving_operator.reconcile.traffic import desired_traffic, rollout_annotation

log = logging.getLogger(__name__)

EVENT_READY: Final = "InferenceServiceReady"
EVENT_NOT_READY: Final = "InferenceServiceNotReady"

Event = tuple[str, str, str]


@dataclass(frozen=True)
class Observed:
    """What exists in the cluster for one InferenceService."""

    # component -> observed Knative Service (only those that exist), found by the label
    # serving.kubeflow.org/inferenceservice=<name>.
    # The observed VirtualService and ExternalName Service are not inputs: the plan always
    # describes them in full, and the shell compares them with what exists.
    ksvcs: Mapping[str, dict[str, Any]]
    knative_installed: bool = True
    istio_installed: bool = True
    # (reason, message) of errors the shell hit last time, e.g. ("ApplyFailed", "...").
    problems: tuple[tuple[str, str], ...] = ()
    # What the shell read about failed revisions (only those ``failure.failed_revision``
    # names): revision name -> the Revision object, and revision name -> its pods. Either may
    # be missing; the cause then comes from the Knative Service's own conditions.
    revisions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pods: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)
    # Raw deployment mode: the observed children by (kind, name), and for Deployments that
    # are not complete, their ReplicaSets and pods by Deployment name (reconcile/raw_plan.py).
    raw: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    raw_replica_sets: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)
    raw_pods: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)
    gateway_api_installed: bool = True


@dataclass(frozen=True)
class ChildRef:
    """A child object to delete."""

    api_version: str
    kind: str
    name: str
    namespace: str


@dataclass(frozen=True)
class Plan:
    """What the shell should do for one InferenceService."""

    # Desired children in apply order: Knative Services, the Service, the VirtualService.
    apply: tuple[dict[str, Any], ...]
    # Children to delete (the Knative Service of a component removed from the spec).
    delete: tuple[ChildRef, ...]
    # The full new status (wire format), ready to be written as is.
    status: dict[str, Any]
    # (type Normal|Warning, reason, message) events to post.
    events: tuple[Event, ...]


def ready_events(name: str, before: Mapping[str, Any], after: Mapping[str, Any],
                 explained: bool = False) -> list[Event]:
    """InferenceServiceReady / InferenceServiceNotReady when Ready enters or leaves True.

    ``explained``: a failure event posted with it already says why, so this one does not
    repeat the message.
    """
    old = text(condition(before, READY).get("status"))
    new_ready = condition(after, READY)
    new, message = text(new_ready.get("status")), text(new_ready.get("message"))
    if new == TRUE and old != TRUE:
        return [("Normal", EVENT_READY, f"InferenceService [{name}] is Ready")]
    if old == TRUE and new != TRUE:
        detail = f": {message}" if message and not explained else ""
        message = f"InferenceService [{name}] is no longer Ready{detail}"
        return [("Warning", EVENT_NOT_READY, message)]
    return []


def failure_events(failed: Mapping[str, RevisionFailure], before: Mapping[str, Any],
                   after: Mapping[str, Any]) -> list[Event]:
    """One Warning per failed revision cause, when the component's condition first says it.

    Keyed on the stored ``<C>Ready`` condition, so a reconcile that finds the same cause again
    (another event, a resync, a restart of the operator) posts nothing.
    """
    events: list[Event] = []
    for component, failure in sorted(failed.items()):
        type_ = ready_type(component)
        now = condition(after, type_)
        if now.get("status") != FALSE or now.get("reason") != failure.reason:
            continue
        then = condition(before, type_)
        if (then.get("status"), then.get("reason"), then.get("message")) == (
                FALSE, now.get("reason"), now.get("message")):
            continue
        events.append(("Warning", failure.reason,
                       f"{component_title(component)}: {now.get('message')}"))
    return events


def _generation(raw: Mapping[str, Any]) -> int | None:
    value = mapping(raw.get("metadata")).get("generation")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _failed_plan(raw: Mapping[str, Any], now: datetime, reason: str, message: str) -> Plan:
    """No children touched; the stored status with Ready False (reason, message)."""
    name = text(mapping(raw.get("metadata")).get("name")) or ""
    before = stored_status(raw.get("status"))
    after: JsonDict = dict(before)
    generation = _generation(raw)
    if generation is not None:
        after["observedGeneration"] = generation
    previous = [c for c in before.get("conditions") or () if isinstance(c, Mapping)]
    kept = [
        Cond(
            str(c.get("type")),
            str(c.get("status")),
            text(c.get("reason")),
            text(c.get("message")),
            text(c.get("severity")),
        )
        for c in previous
        if c.get("type") != READY
    ]
    kept.append(Cond(READY, FALSE, reason, message))
    after["conditions"] = finalize_conditions(kept, previous, format_time(now))
    events = ready_events(name, before, after)
    old_ready = next((c for c in previous if c.get("type") == READY), {})
    if (old_ready.get("reason"), old_ready.get("message")) != (reason, message):
        events.append(("Warning", reason, message))
    return Plan((), (), after, tuple(events))


def invalid_spec_message(errors: list[FieldError]) -> str:
    """All validation problems in one condition message."""
    return "the InferenceService spec is invalid: " + "; ".join(str(e) for e in errors)


def plan_reconcile(
    isvc: dict[str, Any], config: OperatorConfig, observed: Observed, now: datetime
) -> Plan:
    """Everything to do for ``isvc`` (the raw object, status included). Never raises."""
    try:
        return _plan(isvc, config, observed, now)
    except Exception as exc:  # a bug must not stop the other InferenceServices
        log.exception("planning the reconcile of an InferenceService failed")
        return _failed_plan(
            isvc if isinstance(isvc, Mapping) else {},
            now,
            REASON_INTERNAL_ERROR,
            f"the operator failed to compute the desired state ({type(exc).__name__}: {exc}); "
            "please report this as a bug",
        )


def _failure(component: str, ksvc: Mapping[str, Any] | None, observed: Observed,
             before: Mapping[str, Any]) -> RevisionFailure | None:
    """The actionable cause of the component's failed revision, from what the shell read."""
    if ksvc is None:
        return None
    name = text(mapping(ksvc.get("status")).get("latestCreatedRevisionName")) or ""
    found = revision_failure(ksvc, observed.revisions.get(name), observed.pods.get(name, ()))
    if found is None:
        return None
    return keep_better(found, condition(before, ready_type(component)))


def _plan(raw: dict[str, Any], config: OperatorConfig, observed: Observed, now: datetime) -> Plan:
    metadata = mapping(raw.get("metadata"))
    before = stored_status(raw.get("status"))
    if metadata.get("deletionTimestamp"):
        # Children go away through their ownerReferences; nothing to apply or write.
        return Plan((), (), before, ())
    isvc, errors = parse_and_default(raw, config)
    if isvc is None:
        return _failed_plan(raw, now, REASON_INVALID_SPEC, invalid_spec_message(errors))
    if isvc_mode(isvc, config) == RAW_DEPLOYMENT:
        from kfserving_operator.reconcile.raw_plan import plan_raw  # builds on this module
        return plan_raw(raw, isvc, config, observed, now)

    stamp = format_time(now)
    components = isvc.components()
    present = {name for name, _ in components}
    stored_components = mapping(before.get("components"))
    stored_annotations = dict(mapping(before.get("annotations")))
    annotations = {
        k: v
        for k, v in stored_annotations.items()
        if not any(k == rollout_annotation(c) for c in COMPONENTS)
    }

    applies: list[JsonDict] = []
    events: list[Event] = []
    new_components: JsonDict = {}
    component_conds: list[tuple[str, Cond]] = []
    failed: dict[str, RevisionFailure] = {}
    conditions: list[Cond] = []
    for name, spec in components:
        ksvc_ref = f"{isvc.namespace}/{knative_service_name(isvc.name, name)}"
        ksvc = observed.ksvcs.get(name) if observed.knative_installed else None
        state_key = rollout_annotation(name)
        comp_status, rollout = component_status(
            name, mapping(stored_components.get(name)), ksvc, stored_annotations.get(state_key)
        )
        new_components[name] = comp_status
        if rollout.state:
            annotations[state_key] = rollout.state
        events.extend(rollout.events)
        failure = _failure(name, ksvc, observed, before)
        if failure is not None:
            failed[name] = failure
        conds = component_conditions(name, ksvc_ref, ksvc, observed.knative_installed, failure)
        conditions.extend(conds)
        component_conds.append((name, next(c for c in conds if c.type == ready_type(name))))
        if observed.knative_installed:
            traffic = desired_traffic(
                spec.canary_traffic_percent,
                rollout.latest_rolled_out,
                isvc.tag_routing_enabled(),
            )
            applies.append(knative_service(isvc, name, spec, config, traffic))

    applies.append(external_name_service(isvc, config))
    ingress = ingress_condition(component_conds, observed.istio_installed)
    conditions.append(ingress)

    url = text(before.get("url"))
    address = text(mapping(before.get("address")).get("url"))
    if ingress.status == TRUE:
        entry = TRANSFORMER if TRANSFORMER in present else PREDICTOR
        entry_url = text(mapping(new_components.get(entry)).get("url"))
        host = service_host(isvc, config, entry, entry_url)
        applies.append(virtual_service(isvc, config, host, present))
        url = f"{url_scheme(config, entry_url)}://{host}"
        address = address_url(isvc, config)

    ready = ready_condition([c for _, c in component_conds] + [ingress], observed.problems)
    conditions.append(ready)

    after: JsonDict = {}
    generation = _generation(raw)
    if generation is not None:
        after["observedGeneration"] = generation
    previous = [c for c in before.get("conditions") or () if isinstance(c, Mapping)]
    after["conditions"] = finalize_conditions(conditions, previous, stamp)
    if url:
        after["url"] = url
    if address:
        after["address"] = {"url": address}
    after["components"] = new_components
    if annotations:
        after["annotations"] = dict(sorted(annotations.items()))

    deletes = tuple(
        ChildRef(
            KNATIVE_API_VERSION,
            "Service",
            text(mapping(obj.get("metadata")).get("name")) or knative_service_name(isvc.name, c),
            text(mapping(obj.get("metadata")).get("namespace")) or isvc.namespace,
        )
        for c, obj in sorted(observed.ksvcs.items())
        if c not in present and observed.knative_installed
    )
    # A multi-model predictor's ConfigMap (modelconfig-<isvc>-0) is created and filled by the
    # TrainedModel controller (operator/trainedmodels.py), which owns its content.
    explained = failure_events(failed, before, after)
    events.extend(ready_events(isvc.name, before, after, explained=bool(explained)))
    events.extend(explained)
    return Plan(tuple(applies), deletes, after, tuple(events))
