"""The benchmark's side of the API: a bare client, timestamped watches, audit and metrics.

Everything here is the "bare client" the operator is compared with: one lightkube
``AsyncClient`` in the benchmark process, no cache, no work queue. Watches record the
``time.perf_counter()`` at which each event arrived, so every latency is measured by the
benchmark itself, never taken from the operator's logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import re
import ssl
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.types import PatchType, on_error_retry

from kfserving_operator.k8s.api import (
    ConfigMapResource,
    CoreServiceResource,
    DeploymentResource,
    InferenceServiceResource,
    KnativeServiceResource,
    ReplicaSetResource,
    VirtualServiceResource,
)

RESOURCES: dict[str, Any] = {
    "isvc": InferenceServiceResource,
    "ksvc": KnativeServiceResource,
    "service": CoreServiceResource,
    "vs": VirtualServiceResource,
    "configmap": ConfigMapResource,
    "deployment": DeploymentResource,
    "replicaset": ReplicaSetResource,
}
# Where a local-mode operator registers its loopback webhooks at start (and removes them at
# stop): the webhook configurations, and the InferenceService CRD's conversion webhook. A
# restart writes these by design; they are counted apart from the restart's other writes.
WEBHOOK_RESOURCES = frozenset({"mutatingwebhookconfigurations",
                               "validatingwebhookconfigurations",
                               "customresourcedefinitions"})

Obj = dict[str, Any]


def new_client(kubeconfig: str) -> AsyncClient:
    """A bare client as the cluster admin (its writes are not the operator's in the audit)."""
    return AsyncClient(config=KubeConfig.from_file(kubeconfig), field_manager="kfserving-bench",
                       trust_env=False, timeout=httpx2.Timeout(60.0))


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: Iterable[float]) -> dict[str, float]:
    """p50/p99/max/mean of latencies in seconds, reported in milliseconds."""
    items = list(values)
    if not items:
        return {"count": 0, "p50_ms": float("nan"), "p99_ms": float("nan"),
                "max_ms": float("nan"), "mean_ms": float("nan")}
    return {"count": len(items), "p50_ms": percentile(items, 50) * 1000,
            "p99_ms": percentile(items, 99) * 1000, "max_ms": max(items) * 1000,
            "mean_ms": sum(items) / len(items) * 1000}


@dataclass
class Outcome:
    """Per-item latencies and failures of a concurrent batch of requests."""

    latencies: list[float]
    elapsed: float
    errors: list[str] = field(default_factory=list)


async def run_concurrently(count: int, concurrency: int,
                           operation: Callable[[int], Awaitable[object]]) -> Outcome:
    """Call ``operation(i)`` for i in range(count), ``concurrency`` calls in flight."""
    latencies: list[float] = []
    errors: list[str] = []
    indices = iter(range(count))

    async def worker() -> None:
        for index in indices:  # one shared iterator: each index is taken exactly once
            started = time.perf_counter()
            try:
                await operation(index)
            except Exception as exc:
                errors.append(f"{index}: {type(exc).__name__}: {exc}"[:300])
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Outcome(latencies, time.perf_counter() - started, errors)


# -- timestamped watches ------------------------------------------------------------------------

Predicate = Callable[[str, Obj], bool]


@dataclass
class Probe:
    """Remembers the first time each object of one kind satisfied a predicate."""

    kind: str
    predicate: Predicate
    names: frozenset[str] | None = None
    first: dict[str, float] = field(default_factory=dict)

    def done(self, expected: int) -> bool:
        return len(self.first) >= expected


class Tracker:
    """Watches kinds in one namespace; keeps the latest objects and feeds probes."""

    def __init__(self, client: AsyncClient, namespace: str, kinds: Iterable[str]) -> None:
        self.client = client
        self.namespace = namespace
        self.kinds = tuple(kinds)
        self.objects: dict[str, dict[str, Obj]] = {kind: {} for kind in self.kinds}
        self.events: Counter[str] = Counter()
        self._probes: list[Probe] = []
        self._changed = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._synced: dict[str, asyncio.Event] = {kind: asyncio.Event() for kind in self.kinds}

    async def start(self) -> None:
        for kind in self.kinds:
            self._tasks.append(asyncio.create_task(self._watch(kind), name=f"watch-{kind}"))
        # A list first, so the watch starts from a known resourceVersion; existing objects
        # arrive as ADDED events before anything the benchmark does.
        await asyncio.gather(*(event.wait() for event in self._synced.values()))
        await asyncio.sleep(0.3)  # let the watch requests reach the server

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def _watch(self, kind: str) -> None:
        resource = RESOURCES[kind]
        version = await self._list(kind, resource)
        self._synced[kind].set()
        async for event_type, obj in self.client.watch(
                resource, namespace=self.namespace, resource_version=version,
                on_error=on_error_retry):
            now = time.perf_counter()
            body: Obj = dict(obj)
            name = body.get("metadata", {}).get("name")
            if not name:
                continue
            self.events[f"{kind} {event_type}"] += 1
            if event_type == "DELETED":
                self.objects[kind].pop(name, None)
            else:
                self.objects[kind][name] = body
            self._feed(kind, name, event_type, body, now)
            async with self._changed:
                self._changed.notify_all()

    async def _list(self, kind: str, resource: Any) -> str | None:
        # lightkube's list hides the list's own resourceVersion; the newest item's is enough
        # here (an empty list means: watch from now, which replays nothing).
        items = [dict(o) async for o in self.client.list(resource, namespace=self.namespace)]
        for body in items:
            self.objects[kind][body["metadata"]["name"]] = body
        versions = [int(b["metadata"].get("resourceVersion", 0)) for b in items]
        return str(max(versions)) if versions else None

    def _feed(self, kind: str, name: str, event_type: str, body: Obj, now: float) -> None:
        for probe in self._probes:
            if probe.kind != kind or name in probe.first:
                continue
            if probe.names is not None and name not in probe.names:
                continue
            if probe.predicate(event_type, body):
                probe.first[name] = now

    def probe(self, kind: str, predicate: Predicate,
              names: Iterable[str] | None = None) -> Probe:
        """Start recording when objects of ``kind`` satisfy ``predicate``.

        Objects that already satisfy it are recorded at once (with the current time), so a
        predicate should describe the *new* state an action is expected to produce.
        """
        probe = Probe(kind, predicate, frozenset(names) if names is not None else None)
        now = time.perf_counter()
        for name, body in self.objects[kind].items():
            if (probe.names is None or name in probe.names) and predicate("EXISTING", body):
                probe.first[name] = now
        self._probes.append(probe)
        return probe

    def drop(self, *probes: Probe) -> None:
        for probe in probes:
            with contextlib.suppress(ValueError):
                self._probes.remove(probe)

    async def wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``condition()`` holds; False on timeout."""
        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(condition)
        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            return False
        return True


# -- predicates ---------------------------------------------------------------------------------


def condition_status(body: Obj, kind: str) -> str | None:
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("status"))
    return None


def is_ready(_: str, body: Obj) -> bool:
    return condition_status(body, "Ready") == "True"


def observed_generation_at_least(generation: int) -> Predicate:
    def check(_: str, body: Obj) -> bool:
        return int((body.get("status") or {}).get("observedGeneration") or 0) >= generation
    return check


def exists(event_type: str, _: Obj) -> bool:
    return event_type != "DELETED"


def deleted(event_type: str, _: Obj) -> bool:
    return event_type == "DELETED"


# -- calibration: the bare client on the same machine, in the same run ---------------------------


def configmap_body(name: str, namespace: str, payload_bytes: int = 1024) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": {"bench": "calib"}},
            "data": {"payload": "x" * payload_bytes}}


def knative_service_body(name: str, namespace: str) -> Obj:
    """A Knative Service the size of the ones the operator writes, owned by nobody."""
    return {
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"bench": "calib", "component": "predictor"},
                     "annotations": {"serving.kubeflow.org/spec-hash": "0" * 20}},
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {
                        "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
                        "autoscaling.knative.dev/min-scale": "1",
                        "internal.serving.kubeflow.org/storage-initializer-sourceuri":
                            f"gs://bench/models/{name}",
                    },
                    "labels": {"component": "predictor"},
                },
                "spec": {"containers": [{
                    "name": "kfserving-container",
                    "image": "kserve/sklearnserver:v0.15.2",
                    "args": [f"--model_name={name}", "--model_dir=/mnt/models",
                             "--http_port=8080"],
                    "resources": {"limits": {"cpu": "1", "memory": "2Gi"},
                                  "requests": {"cpu": "1", "memory": "2Gi"}},
                }]},
            },
            "traffic": [{"latestRevision": True, "percent": 100}],
        },
    }


@dataclass
class WriteRate:
    """A bare client's create throughput."""

    kind: str
    count: int
    concurrency: int
    elapsed: float
    latencies: dict[str, float]
    errors: int
    client_cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.elapsed if self.elapsed else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "count": self.count, "concurrency": self.concurrency,
                "elapsed_s": self.elapsed, "writes_per_s": self.per_second,
                "latency": self.latencies, "errors": self.errors,
                "client_cpu_s": self.client_cpu_seconds,
                "client_cpu_share": self.client_cpu_seconds / self.elapsed
                if self.elapsed else float("nan")}


async def measure_create_rate(client: AsyncClient, kind: str, namespace: str, count: int,
                              concurrency: int) -> WriteRate:
    """Create ``count`` objects of ``kind`` ("configmap" or "ksvc") with N in flight."""
    resource = RESOURCES[kind]
    build = configmap_body if kind == "configmap" else knative_service_body

    async def create(prefix: str, index: int) -> None:
        await client.create(resource(build(f"{prefix}-{index:05d}", namespace)))

    # Warm up connections (TLS handshakes) outside the timed part.
    await run_concurrently(concurrency, concurrency, lambda i: create(f"warm-{kind}", i))
    cpu = time.process_time()
    outcome = await run_concurrently(count, concurrency, lambda i: create(f"calib-{kind}", i))
    cpu = time.process_time() - cpu
    done = len(outcome.latencies)
    return WriteRate(kind, done, concurrency, outcome.elapsed, summary(outcome.latencies),
                     len(outcome.errors), cpu)


async def measure_round_trip(client: AsyncClient, kind: str, namespace: str,
                             samples: int) -> dict[str, float]:
    """A patch by the client until its own watch delivers it; sequential samples.

    ``configmap``: merge-patch of ``data``. ``ksvc``: merge-patch of the status subresource
    of a custom resource, which is what the Knative stand-in and the operator do.
    """
    name = f"rt-{kind}"
    resource = RESOURCES[kind]
    body = (configmap_body(name, namespace, 64) if kind == "configmap"
            else knative_service_body(name, namespace))
    created = await client.create(resource(body))
    version = str(dict(created)["metadata"]["resourceVersion"])
    seen: asyncio.Queue[tuple[float, Obj]] = asyncio.Queue()

    async def watch() -> None:
        async for _, obj in client.watch(resource, namespace=namespace,
                                         fields={"metadata.name": name},
                                         resource_version=version, on_error=on_error_retry):
            await seen.put((time.perf_counter(), dict(obj)))

    def marker(obj: Obj) -> str | None:
        if kind == "configmap":
            return (obj.get("data") or {}).get("i")
        value = (obj.get("status") or {}).get("benchRound")
        return None if value is None else str(value)

    task = asyncio.create_task(watch())
    latencies: list[float] = []
    try:
        for i in range(samples):
            started = time.perf_counter()
            if kind == "configmap":
                await client.patch(resource, name, {"data": {"i": str(i)}}, namespace=namespace,
                                   patch_type=PatchType.MERGE)
            else:
                await client.patch(resource.Status, name, {"status": {"benchRound": i}},
                                   namespace=namespace, patch_type=PatchType.MERGE)
            while True:
                when, obj = await asyncio.wait_for(seen.get(), 30)
                if marker(obj) == str(i):
                    latencies.append(when - started)
                    break
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    return summary(latencies)


async def delete_calibration_objects(client: AsyncClient, namespace: str) -> None:
    """Remove what calibration created, so the operator's startup lists do not see it."""
    for kind in ("configmap", "ksvc"):
        resource = RESOURCES[kind]
        await client.deletecollection(resource, namespace=namespace)
        for _ in range(300):
            remaining = [o async for o in client.list(resource, namespace=namespace,
                                                      labels={"bench": "calib"})]
            if not remaining:
                break
            await asyncio.sleep(0.2)


# -- server-side counting -----------------------------------------------------------------------


def audit_resource(event: Obj) -> str:
    ref = event.get("objectRef")
    if not ref:  # a non-resource URL such as discovery (/api, /apis/...)
        return str(event.get("requestURI", "?")).split("?")[0]
    resource = str(ref.get("resource", "?"))
    if ref.get("apiGroup") in ("serving.knative.dev", "networking.istio.io"):
        resource = f"{resource}.{str(ref['apiGroup']).split('.')[0]}"
    if ref.get("subresource"):
        resource = f"{resource}/{ref['subresource']}"
    return resource


READ_VERBS = frozenset({"get", "list"})


def is_lease(event: Obj) -> bool:
    """An audit event about a coordination.k8s.io Lease (the operator's leader election)."""
    return (event.get("objectRef") or {}).get("resource") == "leases"


def operator_reads_since(audit_log: Path, offset: int, user: str) -> list[Obj]:
    """GET and LIST requests (not watches) ``user`` made after ``offset``.

    Needs the benchmark's audit policy (:class:`benchmarks.run.BenchControlPlane`), which also
    logs reads; the project's own policy logs writes only.
    """
    with audit_log.open("rb") as handle:
        handle.seek(offset)
        lines = handle.read().decode(errors="replace").splitlines()
    reads = []
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if (event.get("user") or {}).get("username") != user:
            continue
        if event.get("verb") in READ_VERBS and event.get("stage") == "ResponseComplete":
            reads.append(event)
    return reads


def other_readers(audit_log: Path, offset: int, user: str) -> dict[str, int]:
    """GET/LIST by users other than ``user`` after ``offset``: "user verb resource" -> count."""
    counts: Counter[str] = Counter()
    with audit_log.open("rb") as handle:
        handle.seek(offset)
        lines = handle.read().decode(errors="replace").splitlines()
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        who = (event.get("user") or {}).get("username")
        if who == user or event.get("verb") not in READ_VERBS:
            continue
        if event.get("stage") != "ResponseComplete":
            continue
        agent = str(event.get("userAgent", "")).split(" ")[0]
        tail = str(event.get("userAgent", "")).rsplit("/", 1)[-1]
        counts[f"{who} [{agent} .../{tail}] {event['verb']} {audit_resource(event)}"] += 1
    return dict(counts.most_common(10))


def count_requests(events: Iterable[Obj], *, skip_webhook_config: bool = False) -> dict[str, int]:
    """Requests by "verb resource[/subresource]" (core Services as ``services``)."""
    counts: Counter[str] = Counter()
    for event in events:
        resource = (event.get("objectRef") or {}).get("resource")
        if skip_webhook_config and resource in WEBHOOK_RESOURCES:
            continue
        code = int((event.get("responseStatus") or {}).get("code") or 0)
        failed = f" ({code})" if code >= 400 else ""
        counts[f"{event.get('verb')} {audit_resource(event)}{failed}"] += 1
    return dict(sorted(counts.items()))


def samples(events: Iterable[Obj], limit: int = 10) -> list[str]:
    """The first requests as "verb resource namespace/name code", to say what was written."""
    out = []
    for event in events:
        ref = event.get("objectRef") or {}
        code = (event.get("responseStatus") or {}).get("code")
        out.append(f"{event.get('stageTimestamp', '')} {event.get('verb')} "
                   f"{audit_resource(event)} {ref.get('namespace', '')}/{ref.get('name', '')} "
                   f"{code}")
        if len(out) >= limit:
            break
    return out


def _timestamp(value: str) -> float:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def write_profile(events: list[Obj]) -> dict[str, Any]:
    """How the operator's writes were spread in time, from the audit timestamps.

    ``mean_in_flight`` = total server time of the writes / their span: about the number of
    writes the operator kept in flight (8 workers -> at most ~8 if each reconcile writes
    sequentially).
    """
    spans = []
    for event in events:
        try:
            spans.append((_timestamp(event["requestReceivedTimestamp"]),
                          _timestamp(event["stageTimestamp"])))
        except (KeyError, ValueError):
            continue
    if not spans:
        return {}
    first = min(start for start, _ in spans)
    last = max(end for _, end in spans)
    span = last - first
    busy = sum(end - start for start, end in spans)
    return {"span_s": span, "writes_per_s": len(spans) / span if span else float("nan"),
            "mean_in_flight": busy / span if span else float("nan"),
            "server_latency": summary(end - start for start, end in spans)}


_METRIC = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$')
_LABEL = re.compile(r'(\w+)="([^"]*)"')


class ApiServerMetrics:
    """Reads ``apiserver_request_total`` from the local apiserver (all clients together)."""

    def __init__(self, state_dir: Path, apiserver_url: str) -> None:
        pki = state_dir / "pki"
        self._url = f"{apiserver_url}/metrics"
        self._context = ssl.create_default_context(cafile=str(pki / "serving-ca.crt"))
        self._context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))

    def _fetch(self) -> str:
        with urllib.request.urlopen(self._url, context=self._context, timeout=30) as response:
            return str(response.read().decode())

    async def reads(self) -> Counter[str]:
        """Cumulative GET and LIST requests by "VERB resource" (watches excluded)."""
        text = await asyncio.to_thread(self._fetch)
        counts: Counter[str] = Counter()
        for line in text.splitlines():
            match = _METRIC.match(line)
            if not match:
                continue
            labels = dict(_LABEL.findall(match["labels"]))
            if labels.get("verb") not in ("GET", "LIST"):
                continue
            resource = labels.get("resource", "")
            group = labels.get("group", "")
            if group in ("serving.knative.dev", "networking.istio.io"):
                resource = f"{resource}.{group.split('.')[0]}"
            if labels.get("subresource"):
                resource = f"{resource}/{labels['subresource']}"
            counts[f"{labels['verb']} {resource}"] += int(float(match["value"]))
        return counts


RELEVANT_READS = ("inferenceservices", "services", "services.serving", "virtualservices.networking",
                  "configmaps", "secrets", "events")


def read_delta(before: Counter[str], after: Counter[str]) -> dict[str, int]:
    """Reads between two snapshots, limited to the resources the operator deals with."""
    delta: dict[str, int] = {}
    for key, value in after.items():
        resource = key.split(" ", 1)[1]
        if resource.split("/")[0] not in RELEVANT_READS:
            continue
        diff = value - before.get(key, 0)
        if diff:
            delta[key] = diff
    return dict(sorted(delta.items()))


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)
