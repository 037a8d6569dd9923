"""The TrainedModel controller: watches, cache, work queue and the thin reconcile shell.

Keyed by the parent InferenceService (namespace, name): one reconcile plans every TrainedModel
naming that InferenceService (``reconcile/trainedmodel.py``), then

1. gives each TrainedModel its owner reference to the InferenceService (once: garbage
   collection then deletes the TrainedModels with their InferenceService, whether or not the
   operator runs) and the ``inferenceservice`` label;
2. applies ``modelconfig-<isvc>-0`` when its ``models.json`` differs from what we last read or
   wrote there;
3. writes each status that differs from the stored one.

An unchanged world costs no writes: TrainedModels come from the watch cache, and the
ConfigMap's content is remembered from our own writes (read once per InferenceService after a
start). The ConfigMap is the operator's: a hand edit of ``models.json`` is replaced at the next
change of a TrainedModel or its InferenceService, or at the next start.

Registered beside the InferenceService handlers, with its own queue, so a slow or failing
TrainedModel never delays an InferenceService reconcile.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import kopf

from kfserving_operator.api import constants as c
from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.trained_model import (
    PARENT_LABEL,
    TM_API_VERSION,
    TM_KIND,
    TM_PLURAL,
    TM_VERSION,
)
from kfserving_operator.k8s.api import KubeApi, KubeError, ResourceNotInstalled
from kfserving_operator.operator.cache import (
    IsvcKey,
    ObjectCache,
    TrainedModelCache,
    parent_key,
)
from kfserving_operator.operator.workqueue import WorkQueue
from kfserving_operator.reconcile.modelconfig import MODELS_KEY
from kfserving_operator.reconcile.trainedmodel import Parent, plan_trained_models, read_parent

logger = logging.getLogger("kfserving_operator.trainedmodels")

_ABSENT = object()


@dataclass
class TrainedModelReconciler:
    """Reconciles the TrainedModels of one InferenceService at a time."""

    api: KubeApi
    isvcs: ObjectCache
    models: TrainedModelCache
    config: Callable[[], OperatorConfig]
    clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)
    # models.json as last read or written per InferenceService (None: the ConfigMap is absent).
    _model_configs: dict[IsvcKey, str | None] = field(default_factory=dict)

    def forget(self, key: IsvcKey) -> None:
        self._model_configs.pop(key, None)

    async def _parent(self, key: IsvcKey, config: OperatorConfig) -> Parent:
        raw = self.isvcs.get_isvc(key)
        if raw is None:
            # Not (yet) in the InferenceService cache, as right after a start: ask the API
            # rather than report a missing parent that exists.
            raw = await self.api.get(c.API_VERSION, c.KIND, key[1], key[0])
        return read_parent(key[1], key[0], raw, config)

    async def _current_model_config(self, key: IsvcKey, name: str) -> str | None:
        known = self._model_configs.get(key, _ABSENT)
        if known is not _ABSENT:
            return known if isinstance(known, str) or known is None else None
        configmap = await self.api.get("v1", "ConfigMap", name, key[0])
        text = None if configmap is None else str((configmap.get("data") or {}).get(
            MODELS_KEY, ""))
        self._model_configs[key] = text
        return text

    async def reconcile(self, key: IsvcKey) -> None:
        config = self.config()
        models = self.models.models(key)
        parent = await self._parent(key, config)
        if not models and not parent.exists:
            self.forget(key)
            return
        plan = plan_trained_models(parent, models, config, self.clock())
        # One failing write does not hold back the others; the queue retries the key.
        failures: list[str] = []
        for name, metadata in sorted(plan.metadata.items()):
            await self._attempt(failures, self._apply_metadata(key[0], name, metadata))
        if plan.config_map is not None:
            await self._attempt(failures, self._apply_model_config(key, plan.config_map))
        for model in models:
            name = str(model["metadata"]["name"])
            status = plan.statuses.get(name)
            if status is not None and model.get("status") != status:
                await self._attempt(failures, self._write_status(key[0], name, status))
        if failures:
            raise KubeError("; ".join(failures), 0)

    @staticmethod
    async def _attempt(failures: list[str], write: Awaitable[None]) -> None:
        try:
            await write
        except KubeError as exc:
            failures.append(str(exc))

    async def _apply_metadata(self, namespace: str, name: str, metadata: dict[str, Any]) -> None:
        try:
            result = await self.api.apply({
                "apiVersion": TM_API_VERSION,
                "kind": TM_KIND,
                "metadata": {"name": name, "namespace": namespace, **metadata},
            })
        except KubeError as exc:
            if exc.not_found:
                return
            raise
        logger.info("%s/%s: TrainedModel owned by InferenceService %s", namespace, name,
                    metadata["labels"][PARENT_LABEL])
        if result.get("metadata", {}).get("name") == name:
            self.models.put({**result, "apiVersion": TM_API_VERSION, "kind": TM_KIND})

    async def _apply_model_config(self, key: IsvcKey, desired: dict[str, Any]) -> None:
        name = desired["metadata"]["name"]
        wanted = desired["data"][MODELS_KEY]
        if await self._current_model_config(key, name) == wanted:
            return
        try:
            result = await self.api.apply(desired)
        except KubeError:
            self._model_configs.pop(key, None)  # read it again next time
            raise
        self._model_configs[key] = str((result.get("data") or {}).get(MODELS_KEY, ""))
        logger.info("%s/%s: wrote %d bytes of %s", key[0], name, len(wanted), MODELS_KEY)

    async def _write_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            result = await self.api.apply_status({
                "apiVersion": TM_API_VERSION,
                "kind": TM_KIND,
                "metadata": {"name": name, "namespace": namespace},
                "status": status,
            })
        except KubeError as exc:
            if exc.not_found:
                return  # deleted meanwhile
            raise
        ready: dict[str, Any] = next((cond for cond in status.get("conditions", [])
                      if cond.get("type") == "Ready"), {})
        logger.info("%s/%s: TrainedModel Ready=%s %s", namespace, name, ready.get("status"),
                    ready.get("reason") or "")
        self.models.set_status((namespace, name), result.get("status") or status)


def _essence(obj: dict[str, Any]) -> tuple[Any, ...]:
    meta = obj.get("metadata") or {}
    return (obj.get("spec"), meta.get("labels"), meta.get("ownerReferences"),
            meta.get("deletionTimestamp"), meta.get("uid"), obj.get("status"))


def _serves_one_model(isvc: dict[str, Any]) -> bool:
    """True when the predictor names a storageUri, which no multi-model predictor has."""
    spec = isvc.get("spec")
    predictor = spec.get("predictor") if isinstance(spec, dict) else None
    if not isinstance(predictor, dict):
        return False
    return any(isinstance(value, dict) and isinstance(value.get("storageUri"), str)
               and bool(value["storageUri"]) for value in predictor.values())


class TrainedModelWorkers:
    """The TrainedModel queue's workers run exactly while this replica leads, like the
    InferenceService workers: followers watch and cache, but write nothing."""

    def __init__(self) -> None:
        self.leading = False
        self._queue: WorkQueue[IsvcKey] | None = None
        self._resync: Callable[[], None] = lambda: None
        # Called by the InferenceService informer for every event of an InferenceService
        # (type None: listed): a parent's change may change its models' ConfigMap.
        self.parent_event: Callable[[str | None, dict[str, Any]], None] = lambda _t, _o: None

    def attach(self, queue: WorkQueue[IsvcKey], resync: Callable[[], None]) -> None:
        """The queue exists (kopf's startup has listed the TrainedModels)."""
        self._queue, self._resync = queue, resync
        if self.leading:
            self._start()

    def _start(self) -> None:
        assert self._queue is not None
        self._queue.start()
        self._resync()  # changes made while nobody led are found by a full resync

    def lead(self) -> None:
        self.leading = True
        if self._queue is not None and not self._queue.running:
            self._start()

    async def follow(self) -> None:
        self.leading = False
        if self._queue is not None and self._queue.running:
            await self._queue.stop()


def register_trained_models(registry: kopf.OperatorRegistry, api: Callable[[], KubeApi | None],
                            isvcs: ObjectCache, config: Callable[[], OperatorConfig],
                            workers: int = 4) -> TrainedModelWorkers:
    """Register the TrainedModel handlers on ``registry`` (after the operator's own startup,
    whose API client ``api()`` returns). The returned workers are started and stopped with
    the replica's leadership."""
    models = TrainedModelCache()
    state: dict[str, Any] = {}
    leadership = TrainedModelWorkers()
    # Spec and metadata of each InferenceService as last seen: when they change, the model
    # ConfigMap is read again (a hand edit of models.json is repaired then).
    seen_parents: dict[IsvcKey, int] = {}

    def enqueue(key: IsvcKey | None, urgent: bool = True) -> None:
        queue: WorkQueue[IsvcKey] | None = state.get("queue")
        if key is not None and key[1] and queue is not None:
            queue.add(key, urgent=urgent)

    @kopf.on.startup(registry=registry)
    async def trained_models_startup(**_: Any) -> None:
        client = api()
        assert client is not None, "the operator's startup creates the API client first"
        reconciler = TrainedModelReconciler(client, isvcs, models, config)
        state["reconciler"] = reconciler
        # Every TrainedModel before the first reconcile: a reconcile that saw only some of an
        # InferenceService's models would write a models.json without the others.
        try:
            existing = await client.list(TM_API_VERSION, TM_KIND)
        except ResourceNotInstalled:
            existing = []
            logger.warning("the TrainedModel CRD is not installed; multi-model serving is off")
        for obj in existing:
            models.put(obj)
        queue: WorkQueue[IsvcKey] = WorkQueue(reconciler.reconcile, workers=workers,
                                             expected=(KubeError,))
        state["queue"] = queue

        def resync() -> None:
            for key in models.parents():
                enqueue(key, urgent=False)

        # The InferenceServices were listed before this startup ran, when there was no queue
        # to take their parent events: replay them from the cache.
        for isvc in isvcs.isvcs():
            parent_event(None, isvc)
        leadership.attach(queue, resync)
        logger.info("primed the cache with %d TrainedModels", len(existing))

    @kopf.on.cleanup(registry=registry)
    async def trained_models_cleanup(**_: Any) -> None:
        queue: WorkQueue[IsvcKey] | None = state.get("queue")
        if queue is not None:
            await queue.stop()

    @kopf.on.event(c.GROUP, TM_VERSION, TM_PLURAL, registry=registry)
    async def trained_model_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        obj = dict(body)
        key = TrainedModelCache.key(obj)
        if type == "DELETED":
            enqueue(models.drop(key))
            return
        if models.is_current(obj):
            return
        previous = models.get(key)
        enqueue(models.put(obj))  # the parent it left, if it moved
        if previous is not None and _essence(previous) == _essence(obj):
            return  # our own write coming back
        enqueue(parent_key(obj), urgent=type is not None)

    def parent_event(type: str | None, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        reconciler: TrainedModelReconciler | None = state.get("reconciler")
        if type == "DELETED":
            seen_parents.pop(key, None)
            if reconciler is not None:
                reconciler.forget(key)
            if models.has_models(key):
                enqueue(key)
            return
        if not models.has_models(key) and _serves_one_model(obj):
            # The usual InferenceService: nothing for this controller to do or remember.
            # (Checked on the raw spec: this runs for every InferenceService event.)
            if seen_parents.pop(key, None) is not None and reconciler is not None:
                reconciler.forget(key)
            return
        essence = hash(json.dumps([obj.get("spec"), meta.get("labels"), meta.get("annotations"),
                                   meta.get("uid")], sort_keys=True))
        if seen_parents.get(key) != essence:
            seen_parents[key] = essence
            if reconciler is not None:
                reconciler.forget(key)
        if models.has_models(key):
            enqueue(key, urgent=type is not None)
            return
        # A multi-model InferenceService without TrainedModels: its models.json must be empty
        # (a model deleted while the operator was down is removed here after a start).
        parent = read_parent(key[1], key[0], obj, config())
        if parent.isvc is not None and parent.not_multi_model_reason(config()) is None:
            enqueue(key, urgent=type is not None)
    leadership.parent_event = parent_event
    return leadership
