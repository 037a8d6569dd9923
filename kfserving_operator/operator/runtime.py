"""The operator process's shared state and options, and the steps of its start and stop that
touch only that state (the reconciler, the webhooks).

What the handlers share lives on one :class:`Runtime`, created at start-up; ``main.py`` runs
the process's life, ``events.py`` turns informer events into cache entries and queued keys,
``config_loop.py`` keeps the config in force, ``handlers.py`` registers kopf's handlers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from kfserving_operator.api import constants as c
from kfserving_operator.k8s.api import KubeApi, KubeError
from kfserving_operator.k8s.leader import LeaderElector, LeaseTiming
from kfserving_operator.operator.cache import IsvcKey, ObjectCache
from kfserving_operator.operator.config_store import ConfigStore
from kfserving_operator.operator.health import Readiness
from kfserving_operator.operator.informer import Informer
from kfserving_operator.operator.metrics import OperatorMetrics
from kfserving_operator.operator.raw_reads import RawPods
from kfserving_operator.operator.reconciler import Dependencies, ReconcileFailed, Reconciler
from kfserving_operator.operator.trainedmodels import TrainedModelWorkers
from kfserving_operator.operator.workqueue import WorkQueue
from kfserving_operator.webhooks.legacy_registration import ConversionRegistration
from kfserving_operator.webhooks.lifecycle import Webhooks, WebhookStartError
from kfserving_operator.webhooks.server import AdmissionServer

logger = logging.getLogger("kfserving_operator")

# While the API server is unreachable, how often to look whether it is back.
RECOVERY_PROBE_SECONDS = 1.0


LEASE_NAME = "kfserving-controller-manager-leader"


class StartupError(Exception):
    """The operator cannot start; the message is the one line the user sees."""


def default_identity() -> str:
    """client-go's style: the host (the pod's name in a cluster) and a unique suffix."""
    host = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{host}_{uuid.uuid4()}"


@dataclass
class OperatorOptions:
    """How this operator process runs."""

    namespace: str
    webhook_mode: str  # "local", "cluster" or "off"
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 9443  # 0: any free port
    # cluster mode: register this base URL instead of the Service (a load balancer in front
    # of the replicas, or an operator outside the cluster).
    webhook_url: str | None = None
    cert_dir: str | None = None
    workers: int = 8
    health_host: str = "127.0.0.1"
    health_port: int = 0
    leader_election: bool = True
    lease_timing: LeaseTiming = field(default_factory=LeaseTiming)
    identity: str = field(default_factory=default_identity)
    # After SIGTERM: not ready at once, then keep answering admission this long.
    drain_seconds: float = 0.0
    # Empty: every namespace. Otherwise only these, with namespaced reads only.
    watch_namespaces: tuple[str, ...] = ()

    def watches(self, namespace: str | None) -> bool:
        return not self.watch_namespaces or namespace in self.watch_namespaces


@dataclass
class Runtime:
    """Everything the handlers share, created at startup."""

    options: OperatorOptions
    cache: ObjectCache = field(default_factory=ObjectCache)
    raw_pods: RawPods = field(default_factory=RawPods)
    config: ConfigStore = field(default_factory=ConfigStore)
    dependencies: Dependencies = field(default_factory=Dependencies)
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    readiness: Readiness = field(default_factory=Readiness)
    api: KubeApi | None = None
    queue: WorkQueue[IsvcKey] | None = None
    reconciler: Reconciler | None = None
    elector: LeaderElector | None = None
    webhooks: Webhooks | None = None  # served from start-up on, by every replica
    conversion: ConversionRegistration = field(default_factory=ConversionRegistration)
    trained_models: TrainedModelWorkers | None = None  # started while leading, like queue
    recovery: asyncio.Task[None] | None = None
    # The problems of the ConfigMap in force, not yet reported (only the leader reports):
    # (the object the event is about, the message, the reason).
    config_warning: tuple[dict[str, Any], str, str] | None = None
    informers: list[Informer] = field(default_factory=list)
    # Poison reports being posted (held so the tasks are not collected half-way).
    reporting: set[asyncio.Task[None]] = field(default_factory=set)
    def api_unreachable(self) -> None:
        """A reconcile found the API server unreachable: watch for it to come back."""
        if self.recovery is None or self.recovery.done():
            self.recovery = asyncio.create_task(self._await_recovery(),
                                                name="api-recovery-probe")

    async def _await_recovery(self) -> None:
        assert self.api is not None
        while not await self.api.reachable():
            await asyncio.sleep(RECOVERY_PROBE_SECONDS)
        for informer in self.informers:
            informer.recheck()  # do not wait out a retry delay either
        woken = self.queue.retry_now() if self.queue is not None else 0
        logger.info("API server reachable again; retrying %d waiting InferenceServices now",
                    woken)

    @property
    def server(self) -> AdmissionServer | None:
        return self.webhooks.server if self.webhooks is not None else None

    @property
    def leading(self) -> bool:
        """True while this replica may write: it holds the Lease (or election is off)."""
        return self.elector is None or self.elector.is_leader

    @property
    def writer(self) -> KubeApi | None:
        """The API for writes that only the leader makes (events, the last good config)."""
        return self.api if self.leading else None

    def enqueue(self, key: IsvcKey, *, urgent: bool) -> None:
        """Queue a reconcile; followers queue nothing (a new leader resyncs everything)."""
        if self.queue is not None and self.queue.running:
            self.queue.add(key, urgent=urgent)

    def set_dependency(self, attribute: str, installed: bool) -> None:
        """Knative or Istio appeared or went (its CRD's events, or its informer finding the
        type served or not): every InferenceService's status depends on it."""
        if getattr(self.dependencies, attribute) != installed:
            setattr(self.dependencies, attribute, installed)
            logger.info("%s is now %s", attribute.removesuffix("_installed"),
                        "installed" if installed else "NOT installed")
            self.enqueue_all()

    def enqueue_all(self) -> None:
        """Resync everything (config or dependency change), behind any pending real change."""
        for key in self.cache.isvc_keys():
            self.enqueue(key, urgent=False)

    def resync_all(self) -> None:
        """Resync everything when starting to lead. A spec never handled (created or changed
        while no replica led) goes first; the rest is a check that usually writes nothing."""
        for obj in self.cache.isvcs():
            meta = obj.get("metadata", {})
            self.enqueue((str(meta.get("namespace", "")), str(meta.get("name", ""))),
                         urgent=unobserved(obj))


def unobserved(obj: dict[str, Any]) -> bool:
    """True when the status does not yet reflect the object's current generation."""
    status = obj.get("status") or {}
    return bool(status.get("observedGeneration") != obj.get("metadata", {}).get("generation"))


def new_reconciler(runtime: Runtime) -> None:
    """The reconciler and its work queue (started only while leading)."""
    assert runtime.api is not None
    runtime.reconciler = Reconciler(runtime.api, runtime.cache, runtime.config.get,
                                    runtime.dependencies, raw_pods=runtime.raw_pods)
    metrics = runtime.metrics

    def observe(result: str, seconds: float) -> None:
        metrics.reconciles.labels(result=result).inc()
        metrics.reconcile_duration.observe(seconds)

    runtime.queue = WorkQueue(runtime.reconciler.reconcile, workers=runtime.options.workers,
                              expected=(ReconcileFailed, KubeError),
                              on_transient=runtime.api_unreachable,
                              describe=lambda key: f"{key[0]}/{key[1]}", observe=observe)
    metrics.watch_queue(runtime.queue.state)
    metrics.watch_ready_counts(runtime.cache.ready_counts)


def operator_namespace(explicit: str | None) -> str:
    return explicit or os.environ.get("POD_NAMESPACE") or c.OPERATOR_NAMESPACE


async def start_webhooks(runtime: Runtime) -> None:
    """Serve and register the webhooks (see :class:`Webhooks`); a failure is a
    :class:`StartupError`."""
    assert runtime.api is not None
    runtime.webhooks = Webhooks(runtime.options, runtime.api, runtime.config.get,
                                runtime.readiness, runtime.elector, runtime.metrics,
                                runtime.conversion)
    try:
        await runtime.webhooks.start()
    except WebhookStartError as exc:
        raise StartupError(str(exc)) from exc


async def unregister_local_webhooks(runtime: Runtime) -> None:
    """Local mode: remove the loopback registration before the server stops."""
    if runtime.webhooks is not None:
        await runtime.webhooks.unregister_local()


async def stop_webhooks(runtime: Runtime) -> None:
    if runtime.recovery is not None:
        runtime.recovery.cancel()
    if runtime.webhooks is not None:
        await runtime.webhooks.stop()
