"""Informer events into the cache and the work queue, and the informers' start and stop.

InferenceServices and their children come from the operator's own informers
(``informer.py``: one paged LIST, then a watch from its resourceVersion), not from kopf: at
thousands of models kopf's per-event machinery for the initial listing cost more CPU and
memory than everything else, and held every new event behind it. Nothing is stored on the
watched objects, so an operator restart over existing objects writes nothing at all.
Reconciliation is level-based: an event only marks its InferenceService as needing a
reconcile (see ``workqueue.py``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from kfserving_operator.api import constants as c
from kfserving_operator.k8s.decoding import PoisonReport
from kfserving_operator.operator import poison
from kfserving_operator.operator.cache import IsvcKey, controller_owner
from kfserving_operator.operator.informer import NOT_INSTALLED_POLL_SECONDS, Informer
from kfserving_operator.operator.raw_reads import RAW_CHILD_TYPES, RAW_POD_SELECTOR, RAW_POD_TYPES
from kfserving_operator.operator.runtime import Runtime, unobserved

logger = logging.getLogger("kfserving_operator")


def _forget_isvc(runtime: Runtime, key: IsvcKey) -> None:
    runtime.cache.drop_isvc(key)
    if runtime.queue is not None:
        runtime.queue.forget(key)
    if runtime.reconciler is not None:
        runtime.reconciler.forget(key)


def _report_poison(runtime: Runtime, report: PoisonReport) -> None:
    """Post the report without holding up the informer that found the poison object."""
    task = asyncio.get_running_loop().create_task(poison.report(runtime.writer, report))
    runtime.reporting.add(task)
    task.add_done_callback(runtime.reporting.discard)


def _isvc_event(runtime: Runtime, type: str | None, obj: dict[str, Any]) -> None:
    """An InferenceService from the informer: cache it, and queue it when its input changed."""
    meta = obj.get("metadata", {})
    key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
    if type == "DELETED":
        _forget_isvc(runtime, key)
        _trained_model_parent_event(runtime, type, obj)
        return
    report = poison.poisoned(obj)
    if report is None:
        try:
            _take_isvc(runtime, type, obj, key)
            _trained_model_parent_event(runtime, type, obj)
            return
        except RecursionError:
            report = poison.record_unprocessable(obj)
    # Never reconcile a spec we could not read whole: stop handling it until it is fixed.
    _forget_isvc(runtime, key)
    _report_poison(runtime, report)


def _trained_model_parent_event(runtime: Runtime, type: str | None,
                                obj: dict[str, Any]) -> None:
    """TrainedModels hang off InferenceServices: their controller hears of every change."""
    if runtime.trained_models is not None:
        runtime.trained_models.parent_event(type, obj)


def _take_isvc(runtime: Runtime, type: str | None, obj: dict[str, Any], key: IsvcKey) -> None:
    if runtime.cache.is_current(obj):
        return  # the same version again: nothing new
    previous = runtime.cache.get_isvc(key)
    runtime.cache.put_isvc(obj)
    # Our own status write comes back as an event; only spec/metadata changes matter.
    if previous is not None and _same_input(previous, obj):
        return
    # type None is a listing (the start, or a relist after an outage): a resync, not news,
    # unless the spec in it was never handled (created or changed while the operator was down
    # or starting), which goes before the resync of the rest.
    runtime.enqueue(key, urgent=type is not None or unobserved(obj))


def _child_event(runtime: Runtime, type: str | None, obj: dict[str, Any]) -> None:
    """A labelled child from an informer: cache it under its InferenceService, queue that.

    Poison is checked first, so that one without an owner is reported too."""
    report = poison.poisoned(obj)
    if report is None:
        if controller_owner(obj) is None:
            return  # carries our label but is not ours to manage
        try:
            _take_child(runtime, type, obj)
            return
        except RecursionError:
            report = poison.record_unprocessable(obj)
    _report_poison(runtime, report)


def _take_child(runtime: Runtime, type: str | None, obj: dict[str, Any]) -> None:
    if type != "DELETED" and runtime.cache.is_current(obj):
        return  # already known (written back from our own apply, or listed again)
    parent = runtime.cache.put_child(obj, deleted=type == "DELETED")
    if parent is not None and parent in runtime.cache:
        runtime.enqueue(parent, urgent=type is not None)


def _raw_pod_event(runtime: Runtime, type: str | None, obj: dict[str, Any]) -> None:
    """A pod or ReplicaSet of a raw Deployment: keep what the status reads of it, and look at
    its InferenceService again when that changed."""
    parent = runtime.raw_pods.put(obj, deleted=type == "DELETED")
    if parent is not None and parent in runtime.cache:
        runtime.enqueue(parent, urgent=type is not None)


def _same_input(previous: dict[str, Any], current: dict[str, Any]) -> bool:
    """True when only the status (or server bookkeeping) changed between two versions."""
    def essence(obj: dict[str, Any]) -> tuple[Any, ...]:
        meta = obj.get("metadata", {})
        return (obj.get("spec"), meta.get("generation"), meta.get("labels"),
                meta.get("annotations"), meta.get("deletionTimestamp"), meta.get("uid"))
    if essence(previous) != essence(current):
        return False
    # A status someone else wrote (or a stale one) still needs our status to win back.
    return previous.get("status") == current.get("status")


async def start_informers(runtime: Runtime) -> None:
    """List every child and InferenceService, then keep watching; returns once all are listed.

    Every existing child is in the cache before the first reconcile (the workers start after
    this), so a restart re-applies nothing. All types are listed at once; each watch starts
    right after its own listing. Knative, Istio or Gateway API missing shows up here as a
    type that is not served; a cluster-wide operator then waits for the type's CRD event
    (``handlers.py``) instead of looking again, a namespace-scoped one (which watches no CRD)
    looks once a minute. A namespace-scoped operator runs one informer per type and watched
    namespace. The pods and ReplicaSets of raw Deployments have informers of their own
    (``raw_reads.py``).
    """
    api = runtime.api
    assert api is not None
    scopes: tuple[str | None, ...] = runtime.options.watch_namespaces or (None,)
    children = (("v1", "Service", None),
                (c.KNATIVE_API_VERSION, "Service", "knative_installed"),
                (c.ISTIO_API_VERSION, "VirtualService", "istio_installed"),
                *RAW_CHILD_TYPES)

    def handle_child(type: str | None, obj: dict[str, Any]) -> None:
        _child_event(runtime, type, obj)

    def handle_isvc(type: str | None, obj: dict[str, Any]) -> None:
        _isvc_event(runtime, type, obj)

    def handle_raw_pod(type: str | None, obj: dict[str, Any]) -> None:
        _raw_pod_event(runtime, type, obj)

    # Without CRD events (namespace-scoped), a missing type is looked for now and then.
    missing_poll = NOT_INSTALLED_POLL_SECONDS if runtime.options.watch_namespaces else None

    for scope in scopes:
        for api_version, kind, dependency in children:
            def known(api_version: str = api_version, kind: str = kind) -> Any:
                return runtime.cache.children_of(api_version, kind)

            runtime.informers.append(Informer(
                api, api_version, kind, handle_child, known=known, namespace=scope,
                label_selector=c.ISVC_LABEL,
                on_installed=functools.partial(runtime.set_dependency, dependency)
                if dependency else None, missing_poll=missing_poll))
        for api_version, kind in RAW_POD_TYPES:
            runtime.informers.append(Informer(
                api, api_version, kind, handle_raw_pod,
                known=functools.partial(runtime.raw_pods.of_kind, kind), namespace=scope,
                label_selector=RAW_POD_SELECTOR))
        runtime.informers.append(Informer(api, c.API_VERSION, c.KIND, handle_isvc,
                                          known=runtime.cache.isvcs, namespace=scope))
    for informer in runtime.informers:
        informer.start()
    await asyncio.gather(*(informer.synced.wait() for informer in runtime.informers))
    deps = runtime.dependencies
    logger.info("listed %d InferenceServices; dependencies: knative serving %s, istio %s",
                len(runtime.cache),
                "installed" if deps.knative_installed else "NOT installed",
                "installed" if deps.istio_installed else "NOT installed")


async def stop_informers(runtime: Runtime) -> None:
    for informer in runtime.informers:
        await informer.stop()
    runtime.informers.clear()
    for task in list(runtime.reporting):
        task.cancel()
    deps = runtime.dependencies
    logger.info("dependencies: knative serving %s, istio %s",
                "installed" if deps.knative_installed else "NOT installed",
                "installed" if deps.istio_installed else "NOT installed")

