"""The operator process's life: start-up order, leader election, and a graceful stop.

Start-up, in this order, each step fatal with one line if it fails (no retry loop):

1. the probe/metrics server (liveness answers from now on; readiness does not yet);
2. the leader elector, and the config (only the leader writes: the last good config, the
   events, a self-managed certificate);
3. the webhooks: served, then registered;
4. the informers: every InferenceService and child listed into the cache, then watched;
   readiness turns true;
5. kopf's watches of the low-volume types (every replica watches and serves admission;
   only the leader's reconcile workers run).

On SIGTERM or SIGINT: readiness turns false at once and admission answers close their
connections; the leader stops its workers and releases the Lease, so another replica takes
over immediately; admission keeps being answered for the drain period (long enough for the
endpoints to drop this replica); then the watches stop and the process exits. A second
signal skips the rest of the drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import kopf

from kfserving_operator.k8s.api import ClusterConfigError, KubeApi
from kfserving_operator.k8s.leader import LeaderElector
from kfserving_operator.listening import BindError
from kfserving_operator.operator.config_loop import (
    load_config,
    persist_config,
    post_config_warning,
)
from kfserving_operator.operator.events import start_informers, stop_informers
from kfserving_operator.operator.handlers import build_registry, operator_settings
from kfserving_operator.operator.health import HealthServer
from kfserving_operator.operator.runtime import (
    LEASE_NAME,
    OperatorOptions,
    Runtime,
    StartupError,
    new_reconciler,
    operator_namespace,
    start_webhooks,
    stop_webhooks,
    unregister_local_webhooks,
)

logger = logging.getLogger("kfserving_operator")


def _in_cluster() -> bool:
    return Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists() and bool(
        os.environ.get("KUBERNETES_SERVICE_HOST"))


def resolve_webhook_mode(mode: str) -> str:
    if mode == "auto":
        return "cluster" if _in_cluster() else "local"
    return mode


def run_operator(options: OperatorOptions) -> int:
    """Run until stopped; returns the process exit code (1 when start-up fails)."""
    runtime = Runtime(options)
    logger.info("starting: namespace=%s webhooks=%s leader-election=%s identity=%s "
                "watching=%s", options.namespace, options.webhook_mode,
                "on" if options.leader_election else "off", options.identity,
                ",".join(options.watch_namespaces) or "all namespaces")
    try:
        asyncio.run(_serve(runtime))
    except StartupError as exc:
        logger.critical("cannot start: %s", exc)
        return 1
    return 0


async def _serve(runtime: Runtime) -> None:
    options = runtime.options
    health = HealthServer(runtime.readiness, runtime.metrics, options.health_host,
                          options.health_port)
    try:
        await health.start()
    except BindError as exc:
        raise StartupError(f"{exc}; choose another port with --health-port") from exc
    try:
        runtime.api = KubeApi(observer=runtime.metrics)
    except ClusterConfigError as exc:
        await health.stop()
        raise StartupError(f"no cluster to talk to: {exc}") from exc
    stop_requested = asyncio.Event()
    skip_drain = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, signum, stop_requested, skip_drain)
    elector_task: asyncio.Task[None] | None = None
    leading_task: asyncio.Task[None] | None = None
    try:
        if options.leader_election:
            # First: until it leads, this replica writes nothing (not even at start-up).
            runtime.elector = LeaderElector(
                runtime.api, name=LEASE_NAME, namespace=options.namespace,
                identity=options.identity, timing=options.lease_timing,
                on_change=lambda leading: runtime.metrics.leader.set(1 if leading else 0))
            elector_task = asyncio.create_task(runtime.elector.run(), name="leader-election")
        await load_config(runtime)
        new_reconciler(runtime)
        # Start-up may wait (for the leader to issue the certificate, say): a signal ends it.
        if not await _until_stopped(_get_ready(runtime), stop_requested):
            return
        leading_task = asyncio.create_task(_reconcile_while_leading(runtime),
                                           name="reconcile-while-leading")
        existing = asyncio.all_tasks()
        stop_kopf = asyncio.Event()
        tasks = await kopf.spawn_tasks(registry=build_registry(runtime),
                                       settings=operator_settings(runtime),
                                       standalone=True, stop_flag=stop_kopf,
                                       **_watch_scope(options))
        # kopf has just installed its own signal handlers (stop at once); ours drain first.
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, _on_signal, signum, stop_requested, skip_drain)
        kopf_task = asyncio.create_task(kopf.run_tasks(tasks, ignored=existing),
                                        name="kopf")
        stopper = asyncio.create_task(stop_requested.wait())
        await asyncio.wait({kopf_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        await _stop_leading(runtime, elector_task, leading_task)
        if not kopf_task.done():
            await _drain(runtime, skip_drain)
            # The webhook server's connections go before kopf stops, which would otherwise
            # wait for their tasks as if they were its own.
            await stop_webhooks(runtime)
            stop_kopf.set()
        await kopf_task
    finally:
        await _stop_leading(runtime, elector_task, leading_task)
        await stop_webhooks(runtime)
        await stop_informers(runtime)
        await runtime.api.close()
        await health.stop()


def _watch_scope(options: OperatorOptions) -> dict[str, Any]:
    """kopf's scope: the cluster, or each watched namespace plus the operator's own (for its
    ConfigMap; InferenceServices there are ignored unless it is watched too)."""
    if not options.watch_namespaces:
        return {"clusterwide": True}
    return {"clusterwide": False,
            "namespaces": sorted({*options.watch_namespaces, options.namespace})}


async def _get_ready(runtime: Runtime) -> None:
    await start_webhooks(runtime)
    await start_informers(runtime)
    runtime.readiness.cache_primed = True
    logger.info("ready: cache primed, webhooks registered")


async def _until_stopped(step: Coroutine[Any, Any, None], stop_requested: asyncio.Event) -> bool:
    """Run ``step`` unless a stop is requested first; False when it was cut short."""
    task = asyncio.create_task(step)
    stopper = asyncio.create_task(stop_requested.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False
    task.result()  # a StartupError, say
    return True


def _on_signal(signum: int, stop_requested: asyncio.Event, skip_drain: asyncio.Event) -> None:
    if stop_requested.is_set():
        logger.info("%s again: stopping without waiting", signal.Signals(signum).name)
        skip_drain.set()
    else:
        logger.info("%s: stopping", signal.Signals(signum).name)
        stop_requested.set()


async def _reconcile_while_leading(runtime: Runtime) -> None:
    """Run the reconcile workers exactly while this replica leads."""
    queue, elector = runtime.queue, runtime.elector
    assert queue is not None
    if elector is None:
        runtime.metrics.leader.set(1)
        await _begin_leading(runtime)
        return
    while True:
        await elector.leading.wait()
        await _begin_leading(runtime)
        await persist_config(runtime)
        logger.info("reconciling: %d InferenceServices in the cache", len(runtime.cache))
        await elector.not_leading.wait()
        await queue.stop()
        if runtime.trained_models is not None:
            await runtime.trained_models.follow()
        logger.info("stopped reconciling: no longer the leader")


async def _begin_leading(runtime: Runtime) -> None:
    """Start the workers; changes made while nobody led are found by a full resync."""
    assert runtime.queue is not None
    runtime.queue.start()
    runtime.resync_all()
    if runtime.trained_models is not None:
        runtime.trained_models.lead()
    await post_config_warning(runtime)


async def _stop_leading(runtime: Runtime, elector_task: asyncio.Task[None] | None,
                        leading_task: asyncio.Task[None] | None) -> None:
    """Stop writing first, then hand the Lease over (idempotent)."""
    for task in (leading_task, elector_task):
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if runtime.queue is not None and runtime.queue.running:
        await runtime.queue.stop()
    if runtime.trained_models is not None:
        await runtime.trained_models.follow()
    if runtime.elector is not None:
        await runtime.elector.release()


async def _drain(runtime: Runtime, skip_drain: asyncio.Event) -> None:
    """Not ready any more, but answer admission until the endpoints have moved on."""
    runtime.readiness.stopping = True
    if runtime.server is not None:
        runtime.server.draining = True
    # A local registration points at this process only: remove it first, then let the
    # apiserver's view catch up before the server stops.
    await unregister_local_webhooks(runtime)
    seconds = runtime.options.drain_seconds
    if seconds > 0:
        logger.info("not ready; answering admission for %.1fs more", seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(skip_drain.wait(), timeout=seconds)


__all__ = ["OperatorOptions", "operator_namespace", "resolve_webhook_mode", "run_operator"]
