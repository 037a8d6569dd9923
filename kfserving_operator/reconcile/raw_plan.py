"""The plan of an InferenceService in raw deployment mode. Pure.

Per component: a Deployment, a Service and (unless the autoscaler class says otherwise) an
HPA; for the InferenceService one Ingress, or Gateway API HTTPRoutes; no Knative Service,
VirtualService or ExternalName Service. Observed raw children that the plan no longer wants
(a removed component, an HPA after ``autoscalerClass: none``, the previous revision after a
promotion, the Ingress after switching to Gateway API) are deleted.

Canary (Gateway API only; admission refuses it otherwise). A component's revision is the hash
of its pod template. Once a revision is Ready and gets all traffic it is *rolled out*
(``latestRolledoutRevision``). When the spec changes while ``canaryTrafficPercent`` p < 100,
the rolled-out revision keeps running in ``<deployment>-prev`` (created from the live
Deployment before it is updated) and the HTTPRoutes weight ``p`` to the new revision and
``100-p`` to the previous one, but only once the new one is Ready: until then all traffic
stays on the previous revision, so a canary never receives requests it cannot answer.
Promotion (p removed or 100) moves all traffic to the new revision once Ready and then deletes
the previous Deployment; rollback (p = 0) sends everything back.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.constants import (
    APPS_API_VERSION,
    FALSE,
    INGRESS_READY,
    LATEST_TAG,
    PREV_TAG,
    RAW_DEPLOYMENT,
    RAW_REVISION_ANNOTATION,
)
from kfserving_operator.api.inference_service import ComponentSpec, InferenceService
from kfserving_operator.api.raw_validation import routes_made
from kfserving_operator.reconcile.common import JsonDict, format_time, mapping, text
from kfserving_operator.reconcile.conditions import (
    TRUE,
    UNKNOWN,
    Cond,
    finalize_conditions,
    ready_condition,
    ready_type,
)
from kfserving_operator.reconcile.failure import RevisionFailure
from kfserving_operator.reconcile.gateway import (
    Backend,
    component_url,
    entry_component,
    http_routes,
    ingress,
    isvc_url,
    service_host,
)
from kfserving_operator.reconcile.plan import (
    ChildRef,
    Observed,
    Plan,
    failure_events,
    ready_events,
)
from kfserving_operator.reconcile.raw import (
    component_deployment,
    deployment,
    deployment_name,
    horizontal_pod_autoscaler,
    min_replicas,
    previous_name,
    revision_name,
    service,
)
from kfserving_operator.reconcile.raw_status import (
    RawComponentState,
    component_state,
    route_accepted,
    route_problems,
)
from kfserving_operator.reconcile.status import predict_path, stored_status

REASON_GATEWAY_API_NOT_INSTALLED: Final = "GatewayAPINotInstalled"
REASON_ROUTE_NOT_ACCEPTED: Final = "HTTPRouteNotAccepted"
REASON_INGRESS_NOT_CREATED: Final = "IngressNotCreated"


def _digest(obj: Mapping[str, Any] | None) -> str | None:
    if obj is None:
        return None
    return text(mapping(mapping(obj.get("metadata")).get("annotations")).get(
        RAW_REVISION_ANNOTATION))


class _Component:
    """The plan of one component: its children, status and backends."""

    def __init__(self, isvc: InferenceService, name: str, spec: ComponentSpec,
                 config: OperatorConfig, observed: Observed, stored: Mapping[str, Any]) -> None:
        self.name = name
        self.applies: list[JsonDict] = []
        self.failure: RevisionFailure | None = None
        main = component_deployment(isvc, name, spec, config)
        main_name = deployment_name(isvc.name, name)
        digest = _digest(main) or ""
        latest = revision_name(main_name, digest)
        live = observed.raw.get(("Deployment", main_name))
        ref = f"{isvc.namespace}/{main_name}"
        if live is not None and _digest(live) != digest:
            # About to be updated: what it says is not about this revision.
            self.state = RawComponentState(Cond(
                ready_type(name), UNKNOWN, "DeploymentUpdating",
                f"Deployment {ref} is being updated to revision {latest}"))
        else:
            self.state = component_state(ready_type(name), ref, latest, live,
                                         observed.raw_replica_sets.get(main_name, ()),
                                         observed.raw_pods.get(main_name, ()))
        self.failure = self.state.failure
        ready = self.state.ready

        rolled = text(stored.get("latestRolledoutRevision"))
        previous_rolled = text(stored.get("previousRolledoutRevision"))
        percent = spec.canary_traffic_percent
        share = 100 if percent is None else min(max(percent, 0), 100)
        prev_name = previous_name(isvc.name, name)
        prev_live = observed.raw.get(("Deployment", prev_name))
        rolled_digest = rolled.removeprefix(main_name + "-") if rolled else None
        split = (config.ingress.enable_gateway_api and observed.gateway_api_installed
                 and routes_made(isvc, config) and rolled is not None and rolled != latest
                 and (share < 100 or (prev_live is not None and not ready)))
        source = None
        if split:
            source = next((obj for obj in (prev_live, live)
                           if obj is not None and _digest(obj) == rolled_digest), None)
        self.backends: list[Backend]
        if source is not None and rolled is not None and rolled_digest is not None:
            template = mapping(mapping(source.get("spec")).get("template"))
            self.applies.append(deployment(isvc, name, template, name=prev_name,
                                           digest=rolled_digest, replicas=min_replicas(spec)))
            self.applies.append(service(isvc, name, template, prev_name))
            latest_share = share if ready else 0
            self.backends = [(main_name, latest_share), (prev_name, 100 - latest_share)]
            self.traffic: list[JsonDict] = [
                {"tag": LATEST_TAG, "revisionName": latest, "latestRevision": True,
                 "percent": latest_share},
                {"tag": PREV_TAG, "revisionName": rolled, "latestRevision": False,
                 "percent": 100 - latest_share}]
        else:
            self.backends = [(main_name, None)]
            self.traffic = [{"revisionName": latest, "latestRevision": True, "percent": 100}]
            if ready and rolled != latest:
                previous_rolled, rolled = rolled, latest
        self.applies.append(main)
        self.applies.append(service(isvc, name, main["spec"]["template"], main_name))
        hpa = horizontal_pod_autoscaler(isvc, name, spec)
        if hpa is not None:
            self.applies.append(hpa)

        status: JsonDict = {"latestCreatedRevision": latest}
        latest_ready = latest if ready else text(stored.get("latestReadyRevision"))
        for key, value in (("latestReadyRevision", latest_ready),
                           ("previousRolledoutRevision", previous_rolled),
                           ("latestRolledoutRevision", rolled)):
            if value:
                status[key] = value
        status["traffic"] = self.traffic
        status["url"] = component_url(isvc, config, name)
        status["address"] = {"url": f"http://{service_host(isvc, config, main_name)}"}
        self.status = status


def _ingress_condition(isvc: InferenceService, config: OperatorConfig, observed: Observed,
                       routes: list[JsonDict]) -> Cond:
    if not routes_made(isvc, config):
        return Cond(INGRESS_READY, TRUE)
    if not config.ingress.enable_gateway_api:
        if ("Ingress", isvc.name) in observed.raw:
            return Cond(INGRESS_READY, TRUE)
        return Cond(INGRESS_READY, UNKNOWN, REASON_INGRESS_NOT_CREATED,
                    f"Ingress {isvc.namespace}/{isvc.name} has not been created yet")
    if not observed.gateway_api_installed:
        return Cond(INGRESS_READY, FALSE, REASON_GATEWAY_API_NOT_INSTALLED,
                    "ingress.enableGatewayApi is set but the gateway.networking.k8s.io/v1 "
                    "HTTPRoute API is not served in the cluster; install the Gateway API CRDs "
                    "and a Gateway controller")
    gateway = config.ingress.kserve_ingress_gateway
    for route in routes:
        name = route["metadata"]["name"]
        live = observed.raw.get(("HTTPRoute", name))
        ref = f"{isvc.namespace}/{name}"
        if live is None:
            return Cond(INGRESS_READY, UNKNOWN, "HTTPRouteNotCreated",
                        f"HTTPRoute {ref} has not been created yet")
        problems = route_problems(live)
        if problems:
            status, reason, message = problems[0]
            return Cond(INGRESS_READY, FALSE if status == FALSE else UNKNOWN,
                        REASON_ROUTE_NOT_ACCEPTED,
                        f"HTTPRoute {ref} is not accepted by Gateway {gateway}: {reason}: "
                        f"{message}")
        if not route_accepted(live):
            return Cond(INGRESS_READY, UNKNOWN, REASON_ROUTE_NOT_ACCEPTED,
                        f"waiting for Gateway {gateway} to accept HTTPRoute {ref}")
    return Cond(INGRESS_READY, TRUE)


def _identity(obj: Mapping[str, Any]) -> tuple[str, str]:
    return (str(obj.get("kind")), str(mapping(obj.get("metadata")).get("name")))


def plan_raw(raw: Mapping[str, Any], isvc: InferenceService, config: OperatorConfig,
             observed: Observed, now: datetime) -> Plan:
    """Everything to do for ``isvc`` in raw deployment mode."""
    before = stored_status(raw.get("status"))
    stored_components = mapping(before.get("components"))
    components = [_Component(isvc, name, spec, config, observed,
                             mapping(stored_components.get(name)))
                  for name, spec in isvc.components()]
    names = [c.name for c in components]
    applies: list[JsonDict] = [obj for c in components for obj in c.applies]
    routes: list[JsonDict] = []
    if config.ingress.enable_gateway_api:
        if observed.gateway_api_installed:
            timeouts = {name: spec.timeout for name, spec in isvc.components()}
            routes = http_routes(isvc, config, {c.name: c.backends for c in components},
                                 timeouts)
    else:
        made = ingress(isvc, config, names)
        if made is not None:
            routes = [made]
    applies.extend(routes)
    ingress_cond = _ingress_condition(isvc, config, observed, routes)
    component_conds = [c.state.cond for c in components]
    conditions = [*component_conds, ingress_cond,
                  ready_condition([*component_conds, ingress_cond], observed.problems)]

    after: JsonDict = {}
    generation = mapping(raw.get("metadata")).get("generation")
    if isinstance(generation, int) and not isinstance(generation, bool):
        after["observedGeneration"] = generation
    previous = [c for c in before.get("conditions") or () if isinstance(c, Mapping)]
    after["conditions"] = finalize_conditions(conditions, previous, format_time(now))
    after["url"] = isvc_url(isvc, config, names)
    entry = deployment_name(isvc.name, entry_component(names))
    after["address"] = {
        "url": f"http://{service_host(isvc, config, entry)}{predict_path(isvc, config)}"}
    after["components"] = {c.name: c.status for c in components}
    after["deploymentMode"] = RAW_DEPLOYMENT

    wanted = {_identity(obj) for obj in applies}
    deletes = tuple(
        ChildRef(str(obj.get("apiVersion") or APPS_API_VERSION), kind, name, isvc.namespace)
        for (kind, name), obj in sorted(observed.raw.items()) if (kind, name) not in wanted)
    failed = {c.name: c.failure for c in components if c.failure is not None}
    explained = failure_events(failed, before, after)
    events = [*ready_events(isvc.name, before, after, explained=bool(explained)), *explained]
    return Plan(tuple(applies), deletes, after, tuple(events))
