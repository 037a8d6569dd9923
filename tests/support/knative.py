"""A stand-in for Knative Serving's controller, driven explicitly by tests.

Knative cannot run on the loopback control plane (there are no pods), so tests play its part
through the API: :class:`KnativeStandIn` reads a Knative Service the operator wrote, mints a
revision ``<ksvc>-0000N`` for every new revision template, and writes the status Knative would:
conditions, URL, address, the latest created and ready revisions, and ``spec.traffic``
resolved into ``status.traffic`` (``latestRevision: true`` resolves to the latest *ready*
revision, so a failed revision never receives traffic).

It must behave as real Knative Serving measurably does (the e2e tier runs the real thing):
on a failed first revision the Service's ``Ready`` and ``RoutesReady`` say
``RevisionMissing`` and only ``ConfigurationsReady`` carries ``RevisionFailed`` with the
Revision's message; ``status.url`` is there before anything is Ready.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from tests.support.cluster import Cluster, wait_for

DOMAIN = "example.com"


def _template_hash(ksvc: dict[str, Any]) -> str:
    template = ksvc.get("spec", {}).get("template", {})
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()


@dataclass
class _ServiceState:
    revisions: list[str] = field(default_factory=list)  # in creation order
    by_template: dict[str, str] = field(default_factory=dict)
    ready: dict[str, bool | None] = field(default_factory=dict)  # None = still starting
    failure: dict[str, str] = field(default_factory=dict)


@dataclass
class KnativeStandIn:
    """Plays Knative Serving's controller for the Knative Services of one test."""

    cluster: Cluster
    namespace: str
    _services: dict[str, _ServiceState] = field(default_factory=dict)

    def ksvc(self, name: str) -> dict[str, Any]:
        return self.cluster.get_json("services.serving.knative.dev", name, "-n", self.namespace)

    def wait_for_ksvc(self, name: str, timeout: float = 30) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            out = self.cluster.kubectl("get", "services.serving.knative.dev", name, "-n",
                                       self.namespace, "-o", "json", check=False)
            return json.loads(out) if out else None
        result: dict[str, Any] = wait_for(found, timeout=timeout, message=f"ksvc {name}")
        return result

    def observe(self, name: str, *, ready: bool | None = True,
                failure_message: str = "") -> dict[str, Any]:
        """Take the ksvc's current spec into account and write Knative's status for it.

        ``ready`` says what happens to the revision of the current template: True (becomes
        Ready), False (fails with ``failure_message``) or None (still starting).
        """
        ksvc = self.ksvc(name)
        state = self._services.setdefault(name, _ServiceState())
        template = _template_hash(ksvc)
        revision = state.by_template.get(template)
        if revision is None:
            revision = f"{name}-{len(state.revisions) + 1:05d}"
            state.by_template[template] = revision
            state.revisions.append(revision)
        state.ready[revision] = ready
        if ready is False:
            state.failure[revision] = failure_message or "revision failed"
        status = self._status(name, ksvc, state, revision)
        self.cluster.kubectl(
            "patch", "services.serving.knative.dev", name, "-n", self.namespace,
            "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}),
        )
        return status

    def _status(self, name: str, ksvc: dict[str, Any], state: _ServiceState,
                latest_created: str) -> dict[str, Any]:
        ready_revisions = [r for r in state.revisions if state.ready.get(r) is True]
        latest_ready = ready_revisions[-1] if ready_revisions else None
        host = f"{name}.{self.namespace}.{DOMAIN}"
        traffic = []
        for target in ksvc.get("spec", {}).get("traffic") or [{"latestRevision": True,
                                                               "percent": 100}]:
            resolved: dict[str, Any] = {
                "latestRevision": bool(target.get("latestRevision", False)),
                "percent": int(target.get("percent", 0)),
            }
            revision = latest_ready if resolved["latestRevision"] else target.get("revisionName")
            if revision is None:
                continue  # Knative cannot route to a revision that is not ready yet
            resolved["revisionName"] = revision
            if target.get("tag"):
                resolved["tag"] = target["tag"]
                resolved["url"] = f"http://{target['tag']}-{host}"
            traffic.append(resolved)
        created_state = state.ready.get(latest_created)
        # The conditions real Knative Serving writes (measured on the lane, and in
        # knative.dev/serving's service, configuration and route lifecycles): the Service's
        # Ready follows the condition marked last, which is RoutesReady; a route with no ready
        # revision to send traffic to says RevisionMissing, only ConfigurationsReady carries
        # the Revision's failure.
        if created_state is True:
            conditions = [_condition(t, "True") for t in
                          ("ConfigurationsReady", "Ready", "RoutesReady")]
        elif created_state is False:
            message = (f'Revision "{latest_created}" failed with message: '
                       f"{state.failure[latest_created]}.")
            configurations = _condition("ConfigurationsReady", "False", "RevisionFailed", message)
            if latest_ready:
                conditions = [configurations,
                              _condition("Ready", "False", "RevisionFailed", message),
                              _condition("RoutesReady", "True")]
            else:
                missing = f'Configuration "{name}" does not have any ready Revision.'
                conditions = [configurations,
                              _condition("Ready", "False", "RevisionMissing", missing),
                              _condition("RoutesReady", "False", "RevisionMissing", missing)]
        elif latest_ready:
            # A newer revision is starting; the route keeps the latest ready one.
            conditions = [_condition("ConfigurationsReady", "Unknown"),
                          _condition("Ready", "Unknown"),
                          _condition("RoutesReady", "True")]
        else:
            waiting = f'Configuration "{name}" is waiting for a Revision to become ready.'
            conditions = [_condition("ConfigurationsReady", "Unknown"),
                          _condition("Ready", "Unknown", "RevisionMissing", waiting),
                          _condition("RoutesReady", "Unknown", "RevisionMissing", waiting)]
        # The route writes its URL before it can assign traffic; the address and the
        # traffic only once a revision is ready to receive it.
        status: dict[str, Any] = {
            "observedGeneration": ksvc["metadata"]["generation"],
            "conditions": conditions,
            "latestCreatedRevisionName": latest_created,
            "url": f"http://{host}",
        }
        if latest_ready:
            status["latestReadyRevisionName"] = latest_ready
            status["address"] = {"url": f"http://{name}.{self.namespace}.svc.cluster.local"}
            status["traffic"] = traffic
        return status


def _condition(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    condition: dict[str, Any] = {"type": kind, "status": status,
                                 "lastTransitionTime": "2026-01-01T00:00:00Z"}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition
