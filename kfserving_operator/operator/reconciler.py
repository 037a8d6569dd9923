"""The thin shell around the pure reconcile core: observe, plan, apply what changed.

One reconcile of one InferenceService:

1. Observe: the InferenceService and its children come from the watch cache, so a reconcile
   of an unchanged world makes no requests at all (a raw Deployment's pods and ReplicaSets
   too: ``raw_reads.py``). Only when Knative reports a component's latest revision failed are
   that Revision and its pods read (a GET and a labelled LIST), so the status can say why.
2. Plan: :func:`kfserving_operator.reconcile.plan.plan_reconcile` returns the desired children,
   the children to delete, the new status and the events to post.
3. Apply only what differs. Each child carries a hash of its desired form; a child whose hash
   matches and whose owned fields are still as desired is left alone. Status is written only
   when it differs from the stored one.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kfserving_operator import counters
from kfserving_operator.api import constants as c
from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.deployment_mode import resolve_mode
from kfserving_operator.k8s.api import (
    ApiUnavailable,
    KubeApi,
    KubeError,
    NamespaceTerminating,
    ResourceNotInstalled,
)
from kfserving_operator.operator import raw_reads
from kfserving_operator.operator.cache import ChildKey, Children, IsvcKey, ObjectCache, identity
from kfserving_operator.operator.workqueue import Requeue
from kfserving_operator.reconcile.common import is_subset
from kfserving_operator.reconcile.failure import REVISION_LABEL, failed_revision
from kfserving_operator.reconcile.plan import Observed, plan_reconcile

logger = logging.getLogger(__name__)

SPEC_HASH_ANNOTATION = f"{c.GROUP}/spec-hash"
# While a dependency is missing, look again now and then even without a CRD event.
MISSING_DEPENDENCY_RECHECK_SECONDS = 30.0
# A namespace seen terminating is left alone this long before a reconcile may try it again
# (a namespace of the same name may have been created since).
TERMINATING_NAMESPACE_SECONDS = 30.0
# Errors that abort a reconcile as a whole rather than become a problem on its status: the
# API server is unreachable, or the namespace is going away.
_ABORTING = (ApiUnavailable, NamespaceTerminating)


# revision name -> Revision, revision name -> its pods (see Reconciler._read_failed_revisions).
FailedRevisions = tuple[dict[str, dict[str, Any]], dict[str, tuple[dict[str, Any], ...]]]


class ReconcileFailed(Exception):
    """Some writes failed; the status says why and the work queue retries with backoff."""


WRITE_FAILURE_REASONS = frozenset({"ApplyFailed", "DeleteFailed"})


def spec_hash(obj: dict[str, Any]) -> str:
    """A stable hash of a desired child (without the hash annotation itself)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def with_hash(obj: dict[str, Any]) -> dict[str, Any]:
    digest = spec_hash(obj)
    meta = dict(obj["metadata"])
    meta["annotations"] = {**(meta.get("annotations") or {}), SPEC_HASH_ANNOTATION: digest}
    return {**obj, "metadata": meta}


@dataclass
class Dependencies:
    """Which of the CRDs we write to are served, as last probed."""

    knative_installed: bool = True
    istio_installed: bool = True
    gateway_api_installed: bool = True


@dataclass
class Reconciler:
    """Reconciles one InferenceService key at a time (the work queue guarantees that)."""

    api: KubeApi
    cache: ObjectCache
    config: Callable[[], OperatorConfig]
    dependencies: Dependencies = field(default_factory=Dependencies)
    # Pods and ReplicaSets of raw Deployments, from their informers.
    raw_pods: raw_reads.RawPods = field(default_factory=raw_reads.RawPods)
    clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)
    # What we remember per InferenceService, dropped with it by forget():
    # - the resourceVersion our last apply of each child produced: if the server normalises a
    #   field we set, the subset check fails forever; this stops that becoming a hot loop;
    _applied_versions: dict[IsvcKey, dict[ChildKey, str]] = field(default_factory=dict)
    # - the write failures of the last reconcile, which the status reports.
    _problems: dict[IsvcKey, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # Namespaces seen terminating (monotonic time): their InferenceServices are left alone.
    _terminating: dict[str, float] = field(default_factory=dict)
    monotonic: Callable[[], float] = time.monotonic

    def forget(self, key: IsvcKey) -> None:
        """Drop what we remember about a deleted InferenceService."""
        self._applied_versions.pop(key, None)
        self._problems.pop(key, None)

    def _observed(self, key: IsvcKey, children: Children,
                  failures: FailedRevisions | None = None,
                  incomplete: tuple[raw_reads.Objects, raw_reads.Objects] | None = None
                  ) -> Observed:
        revisions, pods = failures or ({}, {})
        replica_sets, raw_pods = incomplete or ({}, {})
        return Observed(
            ksvcs=children.ksvcs,
            knative_installed=self.dependencies.knative_installed,
            istio_installed=self.dependencies.istio_installed,
            problems=self._problems.get(key, ()),
            revisions=revisions,
            pods=pods,
            raw=children.raw,
            raw_replica_sets=replica_sets,
            raw_pods=raw_pods,
            gateway_api_installed=self.dependencies.gateway_api_installed,
        )

    async def _read_failed_revisions(self, namespace: str, children: Children
                                     ) -> FailedRevisions:
        """The Revision and pods of every component whose latest revision Knative failed.

        Best effort: a Revision API that is not served (a stand-in Knative) or a read that
        fails leaves the status to Knative's own condition message.
        """
        revisions: dict[str, dict[str, Any]] = {}
        pods: dict[str, tuple[dict[str, Any], ...]] = {}
        if not self.dependencies.knative_installed:
            return revisions, pods
        for ksvc in children.ksvcs.values():
            name = failed_revision(ksvc)
            if not name:
                continue
            try:
                revision = await self.api.get(c.KNATIVE_API_VERSION, "Revision", name, namespace)
                if revision is not None:
                    revisions[name] = revision
            except KubeError as exc:
                logger.debug("%s/%s: cannot read the failed revision: %s", namespace, name, exc)
            try:
                pods[name] = tuple(await self.api.list(
                    "v1", "Pod", namespace, label_equals=(REVISION_LABEL, name)))
            except KubeError as exc:
                logger.debug("%s/%s: cannot read its pods: %s", namespace, name, exc)
        return revisions, pods

    def _up_to_date(self, key: IsvcKey, desired: dict[str, Any],
                    current: dict[str, Any] | None) -> bool:
        if current is None:
            return False
        annotations = current.get("metadata", {}).get("annotations") or {}
        wanted = desired["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
        if annotations.get(SPEC_HASH_ANNOTATION) != wanted:
            return False
        if is_subset(_owned(desired), current):
            return True
        # Hash matches but the object differs: either someone edited it (repair it), or the
        # server normalised what we wrote (leave it, or we would apply forever).
        applied = self._applied_versions.get(key, {}).get(identity(desired))
        return applied is not None and applied == current.get("metadata", {}).get(
            "resourceVersion")

    async def _apply_children(self, key: IsvcKey, plan_apply: tuple[dict[str, Any], ...],
                              children: Children) -> tuple[list[tuple[str, str]], int]:
        """Apply what differs; return the failures and how many children were written."""
        problems: list[tuple[str, str]] = []
        written = 0
        for child in plan_apply:
            desired = with_hash(child)
            if self._up_to_date(key, desired, children.counterpart(desired)):
                continue
            try:
                result = await self.api.apply(desired)
            except ResourceNotInstalled:
                self._mark_missing(desired)
                problems.append(_missing_problem(desired))
                continue
            except _ABORTING:
                raise
            except KubeError as exc:
                problems.append(("ApplyFailed", str(exc)))
                continue
            self._applied_versions.setdefault(key, {})[identity(desired)] = str(
                result.get("metadata", {}).get("resourceVersion", ""))
            logger.info("%s/%s: applied %s %s", key[0], key[1], desired["kind"],
                        desired["metadata"]["name"])
            self.cache.put_child(result)
            written += 1
        return problems, written

    def _mark_missing(self, obj: dict[str, Any]) -> None:
        if obj["apiVersion"] == c.KNATIVE_API_VERSION:
            self.dependencies.knative_installed = False
        elif obj["apiVersion"].startswith(c.ISTIO_GROUP):
            self.dependencies.istio_installed = False
        elif obj["apiVersion"] == c.GATEWAY_API_VERSION:
            self.dependencies.gateway_api_installed = False

    def _standing_down(self, namespace: str) -> bool:
        since = self._terminating.get(namespace)
        if since is None:
            return False
        if self.monotonic() - since < TERMINATING_NAMESPACE_SECONDS:
            return True
        del self._terminating[namespace]
        return False

    async def reconcile(self, key: IsvcKey) -> str:
        """Reconcile one InferenceService; returns what was done, for the outcome log line."""
        if self._standing_down(key[0]):
            # no applies, no status, no events: the namespace controller is at work
            return "namespace terminating"
        try:
            return await self._reconcile(key)
        except NamespaceTerminating:
            if key[0] not in self._terminating:
                logger.info("namespace %s is terminating; leaving its InferenceServices to "
                            "the namespace controller", key[0])
            self._terminating[key[0]] = self.monotonic()
            return "namespace terminating"
        except RecursionError:
            # Decoded, but too deep to process: fail this key alone, in one line.
            raise ReconcileFailed(f"{key[0]}/{key[1]}: the object is nested too deeply to "
                                  "process") from None

    async def _reconcile(self, key: IsvcKey) -> str:
        isvc = self.cache.get_isvc(key)
        if isvc is None:
            return "gone"
        if isvc.get("metadata", {}).get("deletionTimestamp"):
            return "being deleted"
        config = self.config()
        children = self.cache.children(key)
        failures = await self._read_failed_revisions(key[0], children)
        incomplete = self.raw_pods.incomplete(key[0], children)
        plan = plan_reconcile(isvc, config, self._observed(key, children, failures, incomplete),
                              self.clock())
        problems, writes = await self._apply_children(key, plan.apply, children)
        for ref in plan.delete:
            try:
                await self.api.delete(ref.api_version, ref.kind, ref.name, ref.namespace)
                logger.info("%s/%s: deleted %s %s", key[0], key[1], ref.kind, ref.name)
                writes += 1
            except _ABORTING:
                raise
            except KubeError as exc:
                problems.append(("DeleteFailed", str(exc)))
        previous_problems = self._problems.get(key, ())
        if problems:
            self._problems[key] = tuple(problems)
        else:
            self._problems.pop(key, None)
        # A Warning event per new cause of a failed write; a retry hitting the same cause
        # posts nothing more (the status condition carries it meanwhile).
        new_causes = [(reason, message) for reason, message in dict.fromkeys(problems)
                      if reason in WRITE_FAILURE_REASONS and (reason, message)
                      not in previous_problems]
        if writes or tuple(problems) != previous_problems:
            # Re-plan so the status tells the truth about what was just written, failed or
            # recovered (one status write now instead of another when the watch catches up).
            children = self.cache.children(key)
            plan = plan_reconcile(isvc, config,
                                  self._observed(key, children, failures, incomplete),
                                  self.clock())
        if await self._write_status(isvc, plan.status):
            writes += 1
        for event_type, reason, message in plan.events:
            await self.api.post_event(isvc, event_type, reason, message)
        for reason, message in new_causes:
            counters.WRITE_FAILURE_EVENTS.inc()
            await self.api.post_event(isvc, "Warning", reason, message)
        raw = resolve_mode(isvc, config.deploy.default_deployment_mode) == c.RAW_DEPLOYMENT
        if not raw and not (self.dependencies.knative_installed
                            and self.dependencies.istio_installed):
            raise Requeue(MISSING_DEPENDENCY_RECHECK_SECONDS,
                          f"{writes} writes; waiting for Knative Serving and Istio")
        if problems:
            raise ReconcileFailed("; ".join(message for _, message in problems))
        return f"{writes} writes" if writes else "up to date"

    async def _write_status(self, isvc: dict[str, Any], status: dict[str, Any]) -> bool:
        """Apply the status when it differs; True when it was written."""
        if isvc.get("status") == status:
            return False
        meta = isvc["metadata"]
        ready: dict[str, Any] = next((cond for cond in status.get("conditions", [])
                      if cond.get("type") == "Ready"), {})
        logger.info("%s/%s: status Ready=%s %s", meta["namespace"], meta["name"],
                    ready.get("status"), ready.get("reason") or "")
        try:
            result = await self.api.apply_status({
                "apiVersion": c.API_VERSION,
                "kind": c.KIND,
                "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                "status": status,
            })
        except KubeError as exc:
            if exc.not_found:
                return False  # deleted meanwhile; its DELETED event drops it from the cache
            raise
        # Keep the cache ahead of the watch so the next reconcile compares with what we wrote.
        if result.get("metadata", {}).get("uid") == meta.get("uid"):
            self.cache.set_isvc_status((meta["namespace"], meta["name"]), meta.get("uid"),
                                       result.get("status") or {})
        return True


def _owned(desired: dict[str, Any]) -> dict[str, Any]:
    """The parts of a desired child we compare: everything but apiVersion/kind bookkeeping."""
    return {k: v for k, v in desired.items() if k not in {"apiVersion", "kind"}}


def _missing_problem(obj: dict[str, Any]) -> tuple[str, str]:
    if obj["apiVersion"] == c.GATEWAY_API_VERSION:
        return ("GatewayAPINotInstalled",
                f"the {obj['apiVersion']} {obj['kind']} resource is not served; install the "
                "Gateway API CRDs")
    if obj["apiVersion"] == c.KNATIVE_API_VERSION:
        return ("KnativeServingNotInstalled",
                "the serving.knative.dev/v1 Service resource is not served; install Knative "
                "Serving")
    return ("IstioNotInstalled",
            f"the {obj['apiVersion']} {obj['kind']} resource is not served; install Istio")
