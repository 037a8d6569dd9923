"""The benchmarks themselves: calibration, then B1-B7 against the running operator.

Each function returns a plain dict for the JSON result. Times are ``time.perf_counter()``
differences taken in this process; operator writes come from the apiserver's audit log
(user ``kfserving-operator``), never from the operator's own counters.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightkube import AsyncClient
from lightkube.types import PatchType

from benchmarks import kube
from benchmarks.kube import Obj, Tracker, count_requests, summary
from benchmarks.procstat import cpu_seconds, memory, total_cpu_seconds
from tests.support.cluster import Cluster
from tests.support.knative import KnativeStandIn
from tests.support.operator import OPERATOR_USER, OperatorProcess

BENCH_NAMESPACE = "bench"
RAW_NAMESPACE = "bench-raw"
CALIBRATION_NAMESPACE = "bench-calibration"
STORAGE_URI_ANNOTATION = "internal.serving.kubeflow.org/storage-initializer-sourceuri"


@dataclass
class Options:
    n: int = 200
    concurrency: int = 32
    idle_seconds: float = 60.0
    k_status: int = 50
    k_burst: int = 100
    m_changes: int = 50
    canary: int = 100
    calibration_objects: int = 1000
    round_trip_samples: int = 200
    quiet_seconds: float = 3.0
    only: frozenset[str] = frozenset({"B1", "B2", "B3", "B4", "B5", "B6", "B7", "CFG", "R1"})


@dataclass
class Calibration:
    writes_per_s: float
    round_trip: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    options: Options
    cluster: Cluster
    operator: OperatorProcess
    client: AsyncClient
    tracker: Tracker
    metrics: kube.ApiServerMetrics
    calibration: Calibration
    plane_pids: list[int]
    names: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.operator.process.pid

    def operator_writes(self, offset: int) -> list[Obj]:
        """The operator's writes after ``offset``, its leader-election Lease excluded: the
        Lease is renewed every few seconds whatever the workload (see lease_requests)."""
        return [event for event in self.operator.writes_since(offset)
                if not kube.is_lease(event)]

    def lease_requests(self, offset: int) -> int:
        """The operator's Lease reads and writes after ``offset`` (leader election)."""
        events = self.operator.writes_since(offset)
        if self.operator.audit_log is not None:
            events += kube.operator_reads_since(self.operator.audit_log, offset, OPERATOR_USER)
        return sum(1 for event in events if kube.is_lease(event))

    def writes_since(self, offset: int, **kwargs: bool) -> dict[str, int]:
        return count_requests(self.operator_writes(offset), **kwargs)

    def write_samples(self, offset: int) -> list[str]:
        """What the operator wrote after ``offset`` (first few), for unexpected writes."""
        return kube.samples(self.operator_writes(offset))

    def reads_since(self, offset: int) -> dict[str, int]:
        """The operator's GET/LIST requests (watches excluded), from the audit log."""
        if self.operator.audit_log is None:
            return {}
        return count_requests([event for event in kube.operator_reads_since(
            self.operator.audit_log, offset, OPERATOR_USER) if not kube.is_lease(event)])

    async def settle(self, timeout: float = 300.0) -> float:
        """Wait until the operator has made no write for ``quiet_seconds``; return the wait."""
        started = time.perf_counter()
        offset = self.operator.audit_offset()
        quiet_since = time.perf_counter()
        while time.perf_counter() - started < timeout:
            await asyncio.sleep(0.5)
            new_offset = self.operator.audit_offset()
            if new_offset != offset and self.operator_writes(offset):
                quiet_since = time.perf_counter()
            offset = new_offset
            if time.perf_counter() - quiet_since >= self.options.quiet_seconds:
                break
        return time.perf_counter() - started


def ksvc_name(isvc: str) -> str:
    return f"{isvc}-predictor-default"


def isvc_body(name: str, uri: str, namespace: str = BENCH_NAMESPACE,
              annotations: dict[str, str] | None = None) -> Obj:
    metadata: Obj = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "serving.kubeflow.org/v1beta1", "kind": "InferenceService",
            "metadata": metadata, "spec": {"predictor": {"sklearn": {"storageUri": uri}}}}


def total_writes(counts: dict[str, int]) -> int:
    return sum(counts.values())


def per_item(counts: dict[str, int], items: int) -> dict[str, float]:
    return {key: value / items for key, value in counts.items()} if items else {}


# -- calibration --------------------------------------------------------------------------------


async def calibrate(client: AsyncClient, options: Options, plane_pids: list[int]) -> Calibration:
    """The bare client: create throughput and patch->watch round trip, before the operator.

    The operator is not running yet: it watches every ConfigMap in the cluster (to find its
    own), so it would spend CPU on the calibration objects and slow the bare client down.
    """
    details: dict[str, Any] = {}
    plane_cpu = total_cpu_seconds(plane_pids)
    rate = await kube.measure_create_rate(client, "configmap", CALIBRATION_NAMESPACE,
                                          options.calibration_objects, options.concurrency)
    details["create_configmap"] = rate.as_dict()
    details["create_configmap"]["plane_cpu_s"] = total_cpu_seconds(plane_pids) - plane_cpu
    crd_rate = await kube.measure_create_rate(client, "ksvc", CALIBRATION_NAMESPACE,
                                              options.calibration_objects, options.concurrency)
    details["create_custom_resource"] = crd_rate.as_dict()
    round_trip = await kube.measure_round_trip(client, "configmap", CALIBRATION_NAMESPACE,
                                               options.round_trip_samples)
    details["round_trip_configmap"] = round_trip
    details["round_trip_custom_resource_status"] = await kube.measure_round_trip(
        client, "ksvc", CALIBRATION_NAMESPACE, options.round_trip_samples)
    await kube.delete_calibration_objects(client, CALIBRATION_NAMESPACE)
    return Calibration(rate.per_second, round_trip, details)


# -- B1 burst create ----------------------------------------------------------------------------


async def b1_burst_create(ctx: Context) -> dict[str, Any]:
    options, tracker, names = ctx.options, ctx.tracker, ctx.names
    n = len(names)

    def is_external_name(event: str, body: Obj) -> bool:
        return event != "DELETED" and (body.get("spec") or {}).get("type") == "ExternalName"

    ksvc_seen = tracker.probe("ksvc", kube.exists, [ksvc_name(x) for x in names])
    svc_seen = tracker.probe("service", is_external_name, names)
    observed = tracker.probe("isvc", kube.observed_generation_at_least(1), names)
    sent: dict[str, float] = {}

    async def create(index: int) -> None:
        name = names[index]
        sent[name] = time.perf_counter()
        await ctx.client.create(kube.RESOURCES["isvc"](isvc_body(name, f"gs://bench/{name}/v1")))

    offset = ctx.operator.audit_offset()
    cpu_before = cpu_seconds(ctx.pid)
    plane_before = total_cpu_seconds(ctx.plane_pids)
    started = time.perf_counter()
    outcome = await kube.run_concurrently(n, options.concurrency, create)
    creates_done = time.perf_counter() - started
    complete = await tracker.wait(
        lambda: ksvc_seen.done(n) and svc_seen.done(n) and observed.done(n),
        timeout=max(180.0, n * 0.5))
    finished = max([max(p.first.values(), default=started)
                    for p in (ksvc_seen, svc_seen, observed)])
    t_op = finished - started
    cpu_at_done = cpu_seconds(ctx.pid)
    settle = await ctx.settle()
    cpu_after = cpu_seconds(ctx.pid)
    plane_after = total_cpu_seconds(ctx.plane_pids)
    tracker.drop(ksvc_seen, svc_seen, observed)
    writes = ctx.writes_since(offset)
    profile = kube.write_profile(ctx.operator_writes(offset))
    reads = ctx.reads_since(offset)

    minimal_writes = 4 * n  # isvc create (bench) + ksvc + Service + status (operator)
    t_min = minimal_writes / ctx.calibration.writes_per_s
    cr_rate = ctx.calibration.details.get("create_custom_resource", {}).get("writes_per_s")
    t_min_cr = minimal_writes / cr_rate if cr_rate else float("nan")
    operator_writes = total_writes(writes)
    return {
        "n": n,
        "complete": complete,
        "seen": {"ksvc": len(ksvc_seen.first), "external_name_service": len(svc_seen.first),
                 "observed_generation": len(observed.first)},
        "create_errors": outcome.errors[:10],
        "create_error_count": len(outcome.errors),
        "t_creates_s": creates_done,
        "isvc_create_rate_per_s": n / creates_done if creates_done else float("nan"),
        "isvc_create_latency": summary(outcome.latencies),
        "t_op_s": t_op,
        "t_min_s": t_min,
        "e1": t_min / t_op if t_op else float("nan"),
        "t_min_cr_s": t_min_cr,
        "e1_cr": t_min_cr / t_op if t_op else float("nan"),
        "operator_workers": 8,
        "latencies_s": [observed.first[x] - sent[x] for x in names if x in observed.first],
        "per_isvc_latency": {
            "create_to_ksvc": summary(ksvc_seen.first[ksvc_name(x)] - sent[x]
                                      for x in names if ksvc_name(x) in ksvc_seen.first),
            "create_to_observed_generation": summary(observed.first[x] - sent[x]
                                                     for x in names if x in observed.first),
        },
        "operator_cpu_s": cpu_after - cpu_before,
        "operator_cpu_s_until_done": cpu_at_done - cpu_before,
        "operator_cpu_ms_per_isvc": (cpu_after - cpu_before) / n * 1000,
        "control_plane_cpu_s": plane_after - plane_before,
        "settle_wait_s": settle,
        "operator_writes": writes,
        "operator_writes_per_isvc": operator_writes / n,
        "operator_write_profile": profile,
        "write_efficiency_u": (3 * n) / operator_writes if operator_writes else float("nan"),
        "operator_reads": reads,
        "operator_reads_per_isvc": sum(reads.values()) / n,
    }


# -- B2 idle writes -----------------------------------------------------------------------------


async def b2_idle(ctx: Context) -> dict[str, Any]:
    seconds = ctx.options.idle_seconds
    offset = ctx.operator.audit_offset()
    reads_before = await ctx.metrics.reads()
    cpu_before = cpu_seconds(ctx.pid)
    await asyncio.sleep(seconds)
    cpu_after = cpu_seconds(ctx.pid)
    reads_after = await ctx.metrics.reads()
    writes = ctx.writes_since(offset)
    operator_reads = ctx.reads_since(offset)
    reads = kube.read_delta(reads_before, reads_after)
    return {
        "seconds": seconds,
        "isvcs": len(ctx.tracker.objects["isvc"]),
        "operator_writes": writes,
        "writes_per_min": total_writes(writes) / seconds * 60,
        "write_samples": ctx.write_samples(offset),
        "operator_reads": operator_reads,
        "operator_reads_per_min": total_writes(operator_reads) / seconds * 60,
        "server_reads_all_clients": reads,
        "reads_per_min_all_clients": sum(reads.values()) / seconds * 60,
        "other_readers": kube.other_readers(ctx.operator.audit_log, offset, OPERATOR_USER)
        if ctx.operator.audit_log else {},
        "operator_cpu_s_per_min": (cpu_after - cpu_before) / seconds * 60,
        # Leader election's heartbeat, not counted above: a Lease GET and update per renewal.
        "lease_requests_per_min": ctx.lease_requests(offset) / seconds * 60,
    }


# -- B3-lite restart ----------------------------------------------------------------------------


async def b3_restart(ctx: Context) -> dict[str, Any]:
    tracker = ctx.tracker
    offset = ctx.operator.audit_offset()
    started = time.perf_counter()
    await asyncio.to_thread(ctx.operator.stop)
    stopped = time.perf_counter()
    await asyncio.to_thread(ctx.operator.start)  # waits for the webhooks, then sleeps 1 s
    up = time.perf_counter()

    # (c) A new InferenceService right after the restart: is it stuck behind the backlog?
    probe_name = "restart-probe"
    ksvc_seen = tracker.probe("ksvc", kube.exists, [ksvc_name(probe_name)])
    observed = tracker.probe("isvc", kube.observed_generation_at_least(1), [probe_name])
    created = time.perf_counter()
    await ctx.client.create(kube.RESOURCES["isvc"](
        isvc_body(probe_name, "gs://bench/restart-probe/v1")))
    await tracker.wait(lambda: ksvc_seen.done(1) and observed.done(1), timeout=120)
    new_isvc_latency = {
        "create_to_ksvc_s": ksvc_seen.first.get(ksvc_name(probe_name), float("nan")) - created,
        "create_to_observed_generation_s": observed.first.get(probe_name, float("nan"))
        - created,
    }
    tracker.drop(ksvc_seen, observed)
    settle = await ctx.settle()
    reads = ctx.reads_since(offset)
    events = ctx.operator_writes(offset)
    restart_events = [e for e in events
                      if not str((e.get("objectRef") or {}).get("name", ""))
                      .startswith(probe_name)]
    probe_events = [e for e in events
                    if str((e.get("objectRef") or {}).get("name", "")).startswith(probe_name)]
    writes = count_requests(restart_events, skip_webhook_config=True)
    return {
        "isvcs": len(tracker.objects["isvc"]) - 1,
        "stop_s": stopped - started,
        "start_to_webhooks_registered_s": up - stopped - 1.0,
        "writes_excluding_webhook_config": writes,
        "write_count": total_writes(writes),
        "write_samples": kube.samples(
            e for e in restart_events
            if (e.get("objectRef") or {}).get("resource") not in kube.WEBHOOK_RESOURCES),
        "webhook_config_writes": count_requests(
            [e for e in restart_events
             if (e.get("objectRef") or {}).get("resource") in kube.WEBHOOK_RESOURCES]),
        "new_isvc_after_restart": new_isvc_latency,
        "new_isvc_writes": count_requests(probe_events),
        "startup_cpu_s": cpu_seconds(ctx.pid),
        "operator_reads": reads,
        "settle_wait_s": settle,
    }


# -- B4 memory ----------------------------------------------------------------------------------


def b4_snapshot(ctx: Context, label: str) -> dict[str, Any]:
    mem = memory(ctx.pid)
    return {"label": label, "isvcs": len(ctx.tracker.objects["isvc"]),
            "rss_mib": mem.rss_mib, "hwm_mib": mem.hwm_mib}


def b4_summary(baseline: dict[str, Any], loaded: dict[str, Any],
               after_restart: dict[str, Any] | None) -> dict[str, Any]:
    result: dict[str, Any] = {"baseline": baseline, "loaded": loaded}
    count = max(1, loaded["isvcs"] - baseline["isvcs"])
    result["kib_per_isvc"] = (loaded["rss_mib"] - baseline["rss_mib"]) * 1024 / count
    if after_restart is not None:
        result["after_restart"] = after_restart
        result["kib_per_isvc_after_restart"] = (
            (after_restart["rss_mib"] - baseline["rss_mib"]) * 1024
            / max(1, after_restart["isvcs"] - baseline["isvcs"]))
    per_isvc = max(result["kib_per_isvc"], result.get("kib_per_isvc_after_restart", 0.0))
    result["projected_rss_mib_at_5000"] = baseline["rss_mib"] + per_isvc * 5000 / 1024
    return result


# -- B5 status propagation ----------------------------------------------------------------------


class _CaptureCluster(Cluster):
    """A Cluster whose kubectl does nothing: lets KnativeStandIn compute a status only."""

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return ""


class AsyncKnative(KnativeStandIn):
    """KnativeStandIn's status logic, fed from the benchmark's watch cache.

    ``observe`` then writes nothing (the kubectl calls go nowhere); the benchmark patches the
    returned status with its async client, so a burst can be patched concurrently.
    """

    def __init__(self, cluster: Cluster, namespace: str, cache: dict[str, Obj]) -> None:
        super().__init__(_CaptureCluster(cluster.kubeconfig, cluster.kubectl_path, None),
                         namespace)
        self._cache = cache

    def ksvc(self, name: str) -> dict[str, Any]:
        return self._cache[name]


def _hops(names: list[str], ksvc_ready: kube.Probe, isvc_ready: kube.Probe) -> list[float]:
    return [isvc_ready.first[x] - ksvc_ready.first[ksvc_name(x)] for x in names
            if x in isvc_ready.first and ksvc_name(x) in ksvc_ready.first]


async def b5_status_idle(ctx: Context, names: list[str]) -> dict[str, Any]:
    """One at a time, through KnativeStandIn.observe (kubectl), as the integration tests do."""
    tracker = ctx.tracker
    standin = KnativeStandIn(ctx.cluster, BENCH_NAMESPACE)
    ksvc_ready = tracker.probe("ksvc", kube.is_ready, [ksvc_name(x) for x in names])
    isvc_ready = tracker.probe("isvc", kube.is_ready, names)
    offset = ctx.operator.audit_offset()
    from_call: list[float] = []
    for name in names:
        called = time.perf_counter()
        await asyncio.to_thread(standin.observe, ksvc_name(name), ready=True)

        def became_ready(name: str = name) -> bool:
            return name in isvc_ready.first

        await tracker.wait(became_ready, timeout=30)
        if name in isvc_ready.first:
            from_call.append(isvc_ready.first[name] - called)
    settle = await ctx.settle()
    writes = ctx.writes_since(offset)
    tracker.drop(ksvc_ready, isvc_ready)
    return {
        "k": len(names),
        "ready": len(isvc_ready.first),
        "ksvc_ready_to_isvc_ready": summary(_hops(names, ksvc_ready, isvc_ready)),
        "latencies_s": _hops(names, ksvc_ready, isvc_ready),
        "stand_in_call_to_isvc_ready": summary(from_call),
        "operator_writes": writes,
        "writes_per_isvc": total_writes(writes) / len(names) if names else float("nan"),
        "settle_wait_s": settle,
    }


def _ready_patcher(ctx: Context, standin: AsyncKnative,
                   names: list[str]) -> Callable[[int], Awaitable[None]]:
    """The stand-in's Ready status for ``names[i]``'s ksvc, patched by the bench's client."""
    resource = kube.RESOURCES["ksvc"]

    async def patch(index: int) -> None:
        name = ksvc_name(names[index])
        status = standin.observe(name, ready=True)
        await ctx.client.patch(resource.Status, name, {"status": status},
                               namespace=BENCH_NAMESPACE, patch_type=PatchType.MERGE)

    return patch


async def b5_status_burst(ctx: Context, names: list[str]) -> dict[str, Any]:
    """All at once: the stand-in's status patched for every ksvc, 32 in flight."""
    tracker = ctx.tracker
    standin = AsyncKnative(ctx.cluster, BENCH_NAMESPACE, tracker.objects["ksvc"])
    ksvc_ready = tracker.probe("ksvc", kube.is_ready, [ksvc_name(x) for x in names])
    isvc_ready = tracker.probe("isvc", kube.is_ready, names)
    offset = ctx.operator.audit_offset()
    started = time.perf_counter()
    outcome = await kube.run_concurrently(len(names), ctx.options.concurrency,
                                          _ready_patcher(ctx, standin, names))
    await tracker.wait(lambda: isvc_ready.done(len(names)), timeout=120)
    finished = max(isvc_ready.first.values(), default=started)
    settle = await ctx.settle()
    writes = ctx.writes_since(offset)
    tracker.drop(ksvc_ready, isvc_ready)
    return {
        "k": len(names),
        "ready": len(isvc_ready.first),
        "patch_errors": outcome.errors[:5],
        "ksvc_ready_to_isvc_ready": summary(_hops(names, ksvc_ready, isvc_ready)),
        "latencies_s": _hops(names, ksvc_ready, isvc_ready),
        "t_all_ready_s": finished - started,
        "t_patches_s": outcome.elapsed,
        # Floor: the stand-in's K patches and the operator's 3 writes per isvc (VirtualService,
        # status, Event) at the bare client's write rate.
        "t_min_s": 4 * len(names) / ctx.calibration.writes_per_s,
        "e": (4 * len(names) / ctx.calibration.writes_per_s) / (finished - started)
        if finished > started else float("nan"),
        "operator_writes": writes,
        "writes_per_isvc": total_writes(writes) / len(names) if names else float("nan"),
        "settle_wait_s": settle,
    }


# -- B7 API cost --------------------------------------------------------------------------------


async def b7_noop(ctx: Context, names: list[str]) -> dict[str, Any]:
    """A foreign label on each ksvc: a watch event and a reconcile, nothing to change."""
    tracker = ctx.tracker
    labelled = tracker.probe(
        "ksvc", lambda _, body: (body["metadata"].get("labels") or {}).get("bench/touch") == "1",
        [ksvc_name(x) for x in names])
    offset = ctx.operator.audit_offset()
    resource = kube.RESOURCES["ksvc"]

    async def touch(index: int) -> None:
        await ctx.client.patch(resource, ksvc_name(names[index]),
                               {"metadata": {"labels": {"bench/touch": "1"}}},
                               namespace=BENCH_NAMESPACE, patch_type=PatchType.MERGE)

    await kube.run_concurrently(len(names), ctx.options.concurrency, touch)
    await tracker.wait(lambda: labelled.done(len(names)), timeout=60)
    await ctx.settle()
    writes = ctx.writes_since(offset)
    tracker.drop(labelled)
    return {"k": len(names), "trigger": "foreign label patched onto each ksvc",
            "operator_writes": writes, "write_samples": ctx.write_samples(offset),
            "writes_per_isvc": total_writes(writes) / len(names) if names else float("nan")}


async def b7_spec_change(ctx: Context, names: list[str]) -> dict[str, Any]:
    """storageUri changed on each, one at a time; latency until the ksvc carries it."""
    tracker = ctx.tracker
    uri = {x: f"gs://bench/{x}/v2" for x in names}

    def carries_new_uri(_: str, body: Obj) -> bool:
        name = body["metadata"]["name"].removesuffix("-predictor-default")
        annotations = (((body.get("spec") or {}).get("template") or {}).get("metadata")
                       or {}).get("annotations") or {}
        return annotations.get(STORAGE_URI_ANNOTATION) == uri.get(name)

    ksvc_updated = tracker.probe("ksvc", carries_new_uri, [ksvc_name(x) for x in names])
    observed = tracker.probe("isvc", kube.observed_generation_at_least(2), names)
    offset = ctx.operator.audit_offset()
    resource = kube.RESOURCES["isvc"]
    to_ksvc: list[float] = []
    to_status: list[float] = []
    for name in names:
        started = time.perf_counter()
        await ctx.client.patch(resource, name,
                               {"spec": {"predictor": {"sklearn": {"storageUri": uri[name]}}}},
                               namespace=BENCH_NAMESPACE, patch_type=PatchType.MERGE)

        def reflected(name: str = name) -> bool:
            return ksvc_name(name) in ksvc_updated.first and name in observed.first

        await tracker.wait(reflected, timeout=30)
        if ksvc_name(name) in ksvc_updated.first:
            to_ksvc.append(ksvc_updated.first[ksvc_name(name)] - started)
        if name in observed.first:
            to_status.append(observed.first[name] - started)
    await ctx.settle()
    writes = ctx.writes_since(offset)
    reads = ctx.reads_since(offset)
    tracker.drop(ksvc_updated, observed)
    return {"k": len(names), "patch_to_ksvc_updated": summary(to_ksvc),
            "latencies_s": to_ksvc,
            "operator_reads": reads,
            "patch_to_observed_generation": summary(to_status),
            "operator_writes": writes,
            "writes_per_isvc": total_writes(writes) / len(names) if names else float("nan")}


async def b7_delete(ctx: Context, names: list[str]) -> dict[str, Any]:
    """Delete InferenceServices; children go by garbage collection (ownerReferences)."""
    tracker = ctx.tracker
    ksvc_gone = tracker.probe("ksvc", kube.deleted, [ksvc_name(x) for x in names])
    svc_gone = tracker.probe("service", kube.deleted, names)
    offset = ctx.operator.audit_offset()
    resource = kube.RESOURCES["isvc"]

    async def delete(index: int) -> None:
        await ctx.client.delete(resource, names[index], namespace=BENCH_NAMESPACE)

    started = time.perf_counter()
    await kube.run_concurrently(len(names), ctx.options.concurrency, delete)
    gone = await tracker.wait(lambda: ksvc_gone.done(len(names)) and svc_gone.done(len(names)),
                              timeout=120)
    finished = max([*ksvc_gone.first.values(), *svc_gone.first.values(), started])
    await ctx.settle()
    writes = ctx.writes_since(offset)
    tracker.drop(ksvc_gone, svc_gone)
    return {"k": len(names), "children_gone": gone, "t_children_gone_s": finished - started,
            "operator_writes": writes, "write_samples": ctx.write_samples(offset),
            "writes_per_isvc": total_writes(writes) / len(names) if names else float("nan")}


def operator_log_problems(log_path: Path, offset: int) -> list[str]:
    """Error and traceback lines the operator logged after ``offset`` (first 20)."""
    try:
        with log_path.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
    except OSError:
        return []
    lines = [line for line in text.splitlines()
             if " ERROR " in line or "Traceback" in line or "[ERROR" in line]
    return lines[:20]


# -- B6 canary update ---------------------------------------------------------------------------

CANARY_PERCENT = 10


def _canary_split(isvc: str, rolled_out: str) -> kube.Predicate:
    """The ksvc routes CANARY_PERCENT to its latest revision and the rest to ``rolled_out``."""
    def check(_: str, body: Obj) -> bool:
        if body["metadata"]["name"] != ksvc_name(isvc):
            return False
        traffic = (body.get("spec") or {}).get("traffic") or []
        shares = {("latest" if t.get("latestRevision") else t.get("revisionName")):
                  t.get("percent") for t in traffic}
        return shares == {"latest": CANARY_PERCENT, rolled_out: 100 - CANARY_PERCENT}
    return check


async def _make_ready(ctx: Context, names: list[str]) -> AsyncKnative:
    """Play Knative for ``names``: their first revision Ready, so it counts as rolled out."""
    tracker = ctx.tracker
    standin = AsyncKnative(ctx.cluster, BENCH_NAMESPACE, tracker.objects["ksvc"])
    ready = tracker.probe("isvc", kube.is_ready, names)
    await kube.run_concurrently(len(names), ctx.options.concurrency,
                                _ready_patcher(ctx, standin, names))
    await tracker.wait(lambda: ready.done(len(names)), timeout=120)
    tracker.drop(ready)
    await ctx.settle()
    return standin


async def b6_canary(ctx: Context, names: list[str]) -> dict[str, Any]:
    """A canary step on each of ``names``, one at a time: a new model version with
    canaryTrafficPercent 10, on InferenceServices whose first revision is rolled out.

    Latency: isvc patch -> the ksvc's spec.traffic carries the 10/90 split (seen by watch), and
    -> status.observedGeneration. Writes per update from the audit log. (In the Serverless
    design the split lives in the Knative Service; the VirtualService points at the ksvc's
    host and does not change with the split, so it should not be written.)
    """
    tracker = ctx.tracker
    standin = await _make_ready(ctx, names)
    rolled_out = {x: standin.observe(ksvc_name(x), ready=True)["latestReadyRevisionName"]
                  for x in names}
    await ctx.settle()
    offset = ctx.operator.audit_offset()
    resource = kube.RESOURCES["isvc"]
    to_split: list[float] = []
    to_status: list[float] = []
    for name in names:
        split = tracker.probe("ksvc", _canary_split(name, rolled_out[name]), [ksvc_name(name)])
        observed = tracker.probe("isvc", kube.observed_generation_at_least(2), [name])
        started = time.perf_counter()
        await ctx.client.patch(resource, name, {"spec": {"predictor": {
            "canaryTrafficPercent": CANARY_PERCENT,
            "sklearn": {"storageUri": f"gs://bench/{name}/canary"}}}},
            namespace=BENCH_NAMESPACE, patch_type=PatchType.MERGE)
        def reflected(split: kube.Probe = split, observed: kube.Probe = observed) -> bool:
            return split.done(1) and observed.done(1)

        await tracker.wait(reflected, timeout=30)
        if split.first:
            to_split.append(split.first[ksvc_name(name)] - started)
        if observed.first:
            to_status.append(observed.first[name] - started)
        tracker.drop(split, observed)
    await ctx.settle()
    writes = ctx.writes_since(offset)
    return {"k": len(names), "canary_percent": CANARY_PERCENT,
            "patch_to_ksvc_traffic_split": summary(to_split),
            "patch_to_observed_generation": summary(to_status),
            "latencies_s": to_split,
            "operator_writes": writes, "write_samples": ctx.write_samples(offset),
            "writes_per_update": total_writes(writes) / len(names) if names else float("nan")}


# -- config change ------------------------------------------------------------------------------

CONFIG_NAMESPACE = "kfserving-system"
NEW_SKLEARN_IMAGE = "registry.bench.local/sklearnserver"


def _container_image(body: Obj) -> str:
    containers = ((((body.get("spec") or {}).get("template") or {}).get("spec") or {})
                  .get("containers") or [{}])
    return str(containers[0].get("image", ""))


def default_config_map() -> Obj:
    """``inferenceservice-config`` with the built-in defaults."""
    from kfserving_operator.api.config import CONFIGMAP_NAME, OperatorConfig

    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP_NAME, "namespace": CONFIG_NAMESPACE},
            "data": OperatorConfig().to_configmap_data()}


async def config_change(ctx: Context) -> dict[str, Any]:
    """A new sklearn image in inferenceservice-config: time until every InferenceService's
    Knative Service carries it (seen by watch), and the operator's writes for it.

    T_min is one ksvc write per InferenceService at the bare client's write rate (W_raw).
    """
    tracker = ctx.tracker
    body = default_config_map()
    data = body["data"]
    resource = kube.RESOURCES["configmap"]
    # The defaults written out first: an unchanged config, which must write nothing.
    await ctx.client.apply(resource(body), force=True)
    await asyncio.sleep(2.0)
    await ctx.settle()
    offset_same = ctx.operator.audit_offset()
    names = sorted(tracker.objects["isvc"])
    predictors = json.loads(data["predictors"])
    predictors["sklearn"]["v1"]["image"] = NEW_SKLEARN_IMAGE
    changed = {**data, "predictors": json.dumps(predictors)}
    carries = tracker.probe(
        "ksvc", lambda _, b: _container_image(b).startswith(NEW_SKLEARN_IMAGE + ":"),
        [ksvc_name(x) for x in names])
    writes_same = ctx.writes_since(offset_same)
    offset = ctx.operator.audit_offset()
    cpu_before = cpu_seconds(ctx.pid)
    started = time.perf_counter()
    await ctx.client.apply(resource({**body, "data": changed}), force=True)
    complete = await tracker.wait(lambda: carries.done(len(names)),
                                  timeout=max(120.0, len(names) * 0.2))
    finished = max(carries.first.values(), default=started)
    settle = await ctx.settle()
    cpu_after = cpu_seconds(ctx.pid)
    writes = ctx.writes_since(offset)
    tracker.drop(carries)
    t_min = len(names) / ctx.calibration.writes_per_s
    elapsed = finished - started
    return {"isvcs": len(names), "complete": complete,
            "updated": len(carries.first),
            "t_all_updated_s": elapsed,
            "t_min_s": t_min,
            "e": t_min / elapsed if elapsed > 0 else float("nan"),
            "latencies_s": sorted(t - started for t in carries.first.values()),
            "operator_writes_unchanged_config": writes_same,
            "operator_writes": writes,
            "writes_per_isvc": total_writes(writes) / len(names) if names else float("nan"),
            "operator_cpu_ms_per_isvc": (cpu_after - cpu_before) / max(1, len(names)) * 1000,
            "settle_wait_s": settle}


# -- R1 raw deployment mode ---------------------------------------------------------------------

RAW_MODE_ANNOTATIONS = {"serving.kubeflow.org/deploymentMode": "RawDeployment"}


def raw_names(n: int) -> list[str]:
    return [f"r{i:05d}" for i in range(n)]


def _owned_by(names: frozenset[str]) -> kube.Predicate:
    """A ReplicaSet that exists and is owned by one of the Deployments ``names``."""
    def check(event_type: str, body: Obj) -> bool:
        owners = (body.get("metadata") or {}).get("ownerReferences") or []
        return event_type != "DELETED" and any(
            o.get("kind") == "Deployment" and o.get("name") in names for o in owners)
    return check


async def r1_raw(ctx: Context) -> dict[str, Any]:
    """N raw InferenceServices in a namespace of their own, then an idle window.

    Times until the bench's watch has seen every Deployment and Service, every ReplicaSet (made by
    kube-controller-manager, so the Deployment is one the real controller acts on) and every
    isvc's observedGeneration; the operator's writes and reads per isvc; then writes, reads and
    CPU per minute while nothing changes. There is no node: the pods stay Pending, so every
    Deployment stays incomplete (which the operator re-reads every 10 s to say why).
    """
    options = ctx.options
    names = raw_names(options.n)
    n = len(names)
    deployments = [ksvc_name(x) for x in names]
    tracker = Tracker(ctx.client, RAW_NAMESPACE, ("isvc", "deployment", "replicaset", "service"))
    await tracker.start()
    try:
        deployment_seen = tracker.probe("deployment", kube.exists, deployments)
        service_seen = tracker.probe("service", kube.exists, deployments)
        replica_set_seen = tracker.probe("replicaset", _owned_by(frozenset(deployments)))
        observed = tracker.probe("isvc", kube.observed_generation_at_least(1), names)
        sent: dict[str, float] = {}

        async def create(index: int) -> None:
            name = names[index]
            sent[name] = time.perf_counter()
            await ctx.client.create(kube.RESOURCES["isvc"](isvc_body(
                name, f"gs://bench/{name}/v1", RAW_NAMESPACE, RAW_MODE_ANNOTATIONS)))

        offset = ctx.operator.audit_offset()
        cpu_before = cpu_seconds(ctx.pid)
        rss_before = memory(ctx.pid).rss_mib
        started = time.perf_counter()

        def until(probe: kube.Probe) -> float:
            return max(probe.first.values(), default=started) - started

        outcome = await kube.run_concurrently(n, options.concurrency, create)
        creates_done = time.perf_counter() - started
        complete = await tracker.wait(
            lambda: deployment_seen.done(n) and service_seen.done(n)
            and replica_set_seen.done(n) and observed.done(n),
            timeout=max(180.0, n * 0.5))

        settle = await ctx.settle()
        cpu_after = cpu_seconds(ctx.pid)
        writes = ctx.writes_since(offset)
        reads = ctx.reads_since(offset)
        tracker.drop(deployment_seen, service_seen, replica_set_seen, observed)

        idle_offset = ctx.operator.audit_offset()
        idle_cpu = cpu_seconds(ctx.pid)
        await asyncio.sleep(options.idle_seconds)
        idle_cpu = cpu_seconds(ctx.pid) - idle_cpu
        idle_writes = ctx.writes_since(idle_offset)
        idle_reads = ctx.reads_since(idle_offset)
        rss_after = memory(ctx.pid).rss_mib
    finally:
        await tracker.stop()

    # isvc create (bench) + Deployment, Service, HPA, Ingress and status (operator)
    minimal_writes = 6 * n
    t_min = minimal_writes / ctx.calibration.writes_per_s
    t_deployments = until(deployment_seen)
    operator_writes = total_writes(writes)
    seconds = options.idle_seconds
    return {
        "n": n,
        "complete": complete,
        "seen": {"deployment": len(deployment_seen.first), "service": len(service_seen.first),
                 "replicaset": len(replica_set_seen.first),
                 "observed_generation": len(observed.first)},
        "create_error_count": len(outcome.errors),
        "create_errors": outcome.errors[:10],
        "t_creates_s": creates_done,
        "t_deployments_s": t_deployments,
        "t_services_s": until(service_seen),
        "t_replica_sets_s": until(replica_set_seen),
        "t_observed_generation_s": until(observed),
        "t_min_s": t_min,
        "e": t_min / t_deployments if t_deployments else float("nan"),
        "per_isvc_latency": {
            "create_to_deployment": summary(
                deployment_seen.first[ksvc_name(x)] - sent[x]
                for x in names if ksvc_name(x) in deployment_seen.first),
            "create_to_observed_generation": summary(observed.first[x] - sent[x]
                                                     for x in names if x in observed.first),
        },
        "operator_cpu_ms_per_isvc": (cpu_after - cpu_before) / n * 1000,
        "rss_mib": {"before": rss_before, "after": rss_after},
        "kib_per_isvc": (rss_after - rss_before) * 1024 / n,
        "settle_wait_s": settle,
        "operator_writes": writes,
        "operator_writes_per_isvc": operator_writes / n,
        "operator_write_profile": kube.write_profile(ctx.operator_writes(offset)),
        "operator_reads": reads,
        "operator_reads_per_isvc": total_writes(reads) / n,
        "idle": {
            "seconds": seconds,
            "isvcs": n + len(ctx.tracker.objects["isvc"]),
            "operator_writes": idle_writes,
            "writes_per_min": total_writes(idle_writes) / seconds * 60,
            "write_samples": ctx.write_samples(idle_offset),
            "operator_reads": idle_reads,
            "operator_reads_per_min": total_writes(idle_reads) / seconds * 60,
            "operator_cpu_s_per_min": idle_cpu / seconds * 60,
        },
    }
