"""Conditions with Knative condition-set semantics (reference section 7), made truthful.

Differences from KFServing 0.6.1, on purpose:

* every relevant condition exists from the first reconcile (Unknown, with a reason and a
  message), instead of appearing only once Knative reports something;
* the ``Ready`` dependents are every component's ``<C>Ready`` plus ``IngressReady`` (0.6.1
  ignored the transformer and the explainer);
* ``<C>RouteReady`` mirrors the Knative Service's ``RoutesReady`` and
  ``<C>ConfigurationReady`` its ``ConfigurationsReady`` (0.6.1 had them swapped); the
  explainer's route condition keeps the name every upstream release wrote,
  ``ExplainerRoutesReady``, and ``TransformerConfigurationReady`` is spelled right (as in
  later KServe);
* when a revision failed, ``<C>Ready`` and ``<C>ConfigurationReady`` name the actionable
  cause (see ``failure``), not Knative's ``RevisionMissing``, and say which revision keeps
  serving when an older one does;
* while a component is not ready, ``IngressReady`` carries upstream's reason
  (``Predictor ingress not created``) with a message that says which component and why;
* every condition that is not True has a non-empty reason and message;
* ``Ready`` is computed deterministically: the first False dependent (in the order
  predictor, transformer, explainer, ingress) wins, then the first Unknown; operator-side
  problems (for example a failed apply) override everything with Ready False.

``lastTransitionTime`` changes only when status, reason, message or severity change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from kfserving_operator.api.constants import FALSE, INGRESS_READY, READY
from kfserving_operator.reconcile.common import JsonDict, mapping, sequence, text
from kfserving_operator.reconcile.failure import RevisionFailure, with_serving

TRUE: Final = "True"
UNKNOWN: Final = "Unknown"
SEVERITY_INFO: Final = "Info"


# Reasons this operator sets.
REASON_INITIALIZING: Final = "Initializing"
REASON_KSVC_NOT_CREATED: Final = "KnativeServiceNotCreated"
REASON_KSVC_UPDATING: Final = "KnativeServiceUpdating"
REASON_KNATIVE_NOT_INSTALLED: Final = "KnativeServingNotInstalled"
REASON_ISTIO_NOT_INSTALLED: Final = "IstioNotInstalled"
REASON_INTERNAL_ERROR: Final = "InternalError"


def component_title(component: str) -> str:
    """``predictor`` -> ``Predictor``."""
    return component[:1].upper() + component[1:]


def ready_type(component: str) -> str:
    """``PredictorReady``, ``TransformerReady``, ``ExplainerReady``."""
    return f"{component_title(component)}Ready"


def route_ready_type(component: str) -> str:
    """``PredictorRouteReady``, ``TransformerRouteReady``, ``ExplainerRoutesReady`` (Info).

    The explainer's is plural in every KFServing and KServe release (none ever wrote
    ``ExplainerRouteReady``); clients that read it by name must find it.
    """
    if component == "explainer":
        return "ExplainerRoutesReady"
    return f"{component_title(component)}RouteReady"


def configuration_ready_type(component: str) -> str:
    """``PredictorConfigurationReady``, ... (Info)."""
    return f"{component_title(component)}ConfigurationReady"


def not_ready_reason(component: str) -> str:
    """``Predictor ingress not created``: upstream's IngressReady reason while a component
    holds the gate (KFServing 0.6.1 and KServe write exactly these words)."""
    return f"{component_title(component)} ingress not created"


@dataclass(frozen=True)
class Cond:
    """A condition before time stamps are assigned."""

    type: str
    status: str
    reason: str | None = None
    message: str | None = None
    severity: str | None = None

    def with_defaults(self, reason: str, message: str) -> Cond:
        """Fill an empty reason or message of a non-True condition."""
        if self.status == TRUE:
            return Cond(self.type, TRUE, severity=self.severity)
        return Cond(
            self.type,
            self.status,
            self.reason or reason,
            self.message or message,
            self.severity,
        )


def knative_condition(status: Mapping[str, Any], type_: str) -> Cond | None:
    """The condition ``type_`` of a Knative object's status, if reported."""
    for raw in sequence(status.get("conditions")):
        item = mapping(raw)
        if item.get("type") != type_:
            continue
        value = item.get("status")
        if value not in (TRUE, FALSE, UNKNOWN):
            value = UNKNOWN
        return Cond(type_, str(value), text(item.get("reason")), text(item.get("message")))
    return None


def _generation(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def ksvc_is_current(ksvc: Mapping[str, Any]) -> bool:
    """False when Knative has not reconciled the latest spec of the Service yet."""
    generation = _generation(mapping(ksvc.get("metadata")).get("generation"))
    observed = _generation(mapping(ksvc.get("status")).get("observedGeneration"))
    return generation is None or observed is None or observed >= generation


def ksvc_ready(ksvc: Mapping[str, Any] | None) -> bool:
    """True when the Knative Service is Ready for its current generation."""
    if ksvc is None or not ksvc_is_current(ksvc):
        return False
    cond = knative_condition(mapping(ksvc.get("status")), READY)
    return cond is not None and cond.status == TRUE


def component_conditions(
    component: str,
    ksvc_ref: str,
    ksvc: Mapping[str, Any] | None,
    knative_installed: bool,
    failure: RevisionFailure | None = None,
) -> list[Cond]:
    """``<C>Ready``, ``<C>RouteReady`` and ``<C>ConfigurationReady`` of one component.

    ``ksvc_ref`` is ``<namespace>/<name>`` of its Knative Service (for messages), ``ksvc`` the
    observed object (None when it does not exist yet), ``failure`` the actionable cause of its
    failed latest revision (``failure.revision_failure``), if it failed.
    """
    types = (
        (ready_type(component), READY, None),
        (route_ready_type(component), "RoutesReady", SEVERITY_INFO),
        (configuration_ready_type(component), "ConfigurationsReady", SEVERITY_INFO),
    )
    if not knative_installed:
        message = (
            "Knative Serving is not installed: the serving.knative.dev/v1 Service API is not "
            f"available in the cluster, so the {component} cannot be deployed. Install Knative "
            "Serving; the InferenceService is reconciled again once it is there."
        )
        return [Cond(t, FALSE, REASON_KNATIVE_NOT_INSTALLED, message, s) for t, _, s in types]
    if ksvc is None:
        message = f"Knative Service {ksvc_ref} has not been created yet"
        return [Cond(t, UNKNOWN, REASON_KSVC_NOT_CREATED, message, s) for t, _, s in types]

    status = mapping(ksvc.get("status"))
    result: list[Cond] = []
    for own_type, knative_type, severity in types:
        found = knative_condition(status, knative_type)
        if found is None:
            cond = Cond(
                own_type,
                UNKNOWN,
                REASON_INITIALIZING,
                f"waiting for Knative to report {knative_type} of Knative Service {ksvc_ref}",
                severity,
            )
        else:
            cond = Cond(own_type, found.status, found.reason, found.message, severity)
        if own_type == ready_type(component) and not ksvc_is_current(ksvc):
            generation = mapping(ksvc.get("metadata")).get("generation")
            cond = Cond(
                own_type,
                UNKNOWN,
                REASON_KSVC_UPDATING,
                f"Knative has not yet reconciled generation {generation} of Knative Service "
                f"{ksvc_ref}",
                severity,
            )
        if failure is not None and knative_type != "RoutesReady" and ksvc_is_current(ksvc):
            cond = Cond(own_type, FALSE, failure.reason, with_serving(failure, ksvc), severity)
        what = "is not ready" if cond.status == FALSE else "is not ready yet"
        result.append(
            cond.with_defaults(
                f"{knative_type}{cond.status}",
                f"Knative Service {ksvc_ref} {what} ({knative_type}={cond.status}, no reason "
                "given)",
            )
        )
    return result


def ingress_condition(components: Sequence[tuple[str, Cond]], istio_installed: bool) -> Cond:
    """``IngressReady``: the gate of the VirtualService.

    False when Istio is missing or a component is False, Unknown while a component is
    Unknown, True when every component is Ready. While a component holds the gate the reason
    is upstream's (``Predictor ingress not created``) and the message says why.
    """
    if not istio_installed:
        return Cond(
            INGRESS_READY,
            FALSE,
            REASON_ISTIO_NOT_INSTALLED,
            "Istio is not installed: the networking.istio.io VirtualService API is not "
            "available in the cluster, so no route to the InferenceService can be created. "
            "Install Istio; the InferenceService is reconciled again once it is there.",
        )
    for wanted in (FALSE, UNKNOWN):
        for component, cond in components:
            if cond.status == wanted:
                state = "is not ready" if wanted == FALSE else "is not ready yet"
                return Cond(
                    INGRESS_READY,
                    wanted,
                    not_ready_reason(component),
                    f"the VirtualService is applied once every component is ready; the "
                    f"{component} {state}: {cond.reason}: {cond.message}",
                )
    return Cond(INGRESS_READY, TRUE)


def ready_condition(dependents: Sequence[Cond], problems: Iterable[tuple[str, str]] = ()) -> Cond:
    """``Ready``: problems first, then the first False dependent, then the first Unknown."""
    problem_list = [(r, m) for r, m in problems if r or m]
    if problem_list:
        reason = problem_list[0][0] or REASON_INTERNAL_ERROR
        message = "; ".join(m for _, m in problem_list if m) or reason
        return Cond(READY, FALSE, reason, message)
    for wanted in (FALSE, UNKNOWN):
        for cond in dependents:
            if cond.status == wanted:
                return Cond(READY, wanted, cond.reason, cond.message)
    return Cond(READY, TRUE)


def finalize_conditions(
    conditions: Iterable[Cond], previous: Iterable[Mapping[str, Any]], now: str
) -> list[JsonDict]:
    """Wire-format conditions sorted by type, keeping unchanged transition times."""
    before: dict[str, Mapping[str, Any]] = {}
    for item in previous:
        if isinstance(item, Mapping) and isinstance(item.get("type"), str):
            before[str(item["type"])] = item
    result: list[JsonDict] = []
    for cond in sorted(conditions, key=lambda c: c.type):
        wire: JsonDict = {"type": cond.type, "status": cond.status}
        if cond.severity:
            wire["severity"] = cond.severity
        if cond.status != TRUE:
            if cond.reason:
                wire["reason"] = cond.reason
            if cond.message:
                wire["message"] = cond.message
        old = before.get(cond.type)
        unchanged = old is not None and all(
            (old.get(key) or None) == wire.get(key)
            for key in ("status", "severity", "reason", "message")
        )
        stamp = old.get("lastTransitionTime") if old is not None and unchanged else None
        wire["lastTransitionTime"] = stamp if isinstance(stamp, str) and stamp else now
        result.append(wire)
    return result
