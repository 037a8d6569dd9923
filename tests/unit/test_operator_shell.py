"""The operator shell's own logic: work queue, cache attribution, change detection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kfserving_operator.operator.cache import IsvcKey, ObjectCache, controller_owner
from kfserving_operator.operator.config_store import ConfigStore
from kfserving_operator.operator.reconciler import spec_hash, with_hash
from kfserving_operator.operator.workqueue import Requeue, WorkQueue
from kfserving_operator.reconcile.common import is_subset


async def test_queue_coalesces_a_burst_into_one_reconcile() -> None:
    seen: list[str] = []
    gate = asyncio.Event()

    async def handle(key: str) -> None:
        seen.append(key)
        await gate.wait()

    queue: WorkQueue[str] = WorkQueue(handle, workers=2)
    queue.start()
    for _ in range(5):
        queue.add("a")
    await asyncio.sleep(0.05)
    for _ in range(5):
        queue.add("a")  # arrives while "a" is running: exactly one more pass
    gate.set()
    await asyncio.sleep(0.1)
    await queue.stop()
    assert seen == ["a", "a"]


async def test_failing_key_backs_off_without_stalling_others() -> None:
    calls: dict[str, int] = {"bad": 0, "good": 0}

    async def handle(key: str) -> None:
        calls[key] += 1
        if key == "bad":
            raise RuntimeError("boom")

    queue: WorkQueue[str] = WorkQueue(handle, workers=1, base_delay=0.05, max_delay=0.2)
    queue.start()
    queue.add("bad")
    queue.add("good")
    await asyncio.sleep(0.5)
    assert queue.backoff("bad") == pytest.approx(0.2)
    await queue.stop()
    assert calls["good"] == 1
    # 0.05 + 0.1 + 0.2 + 0.2 ... : a handful of retries, not a hot loop
    assert 2 <= calls["bad"] <= 6


async def test_requeue_comes_back_after_the_delay() -> None:
    calls: list[float] = []

    async def handle(key: str) -> None:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) == 1:
            raise Requeue(0.1)

    queue: WorkQueue[str] = WorkQueue(handle, workers=1)
    queue.start()
    queue.add("k")
    await asyncio.sleep(0.3)
    await queue.stop()
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.09


def _child(kind: str, api_version: str, owner: str | None, component: str = "") -> dict[
        str, Any]:
    meta: dict[str, Any] = {"name": "x", "namespace": "ns", "labels": {"component": component}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "serving.kubeflow.org/v1beta1",
                                    "kind": "InferenceService", "name": owner,
                                    "controller": True, "uid": "u"}]
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}


def test_children_are_attributed_by_controller_owner() -> None:
    cache = ObjectCache()
    ksvc = _child("Service", "serving.knative.dev/v1", "iris", "predictor")
    assert cache.put_child(ksvc) == ("ns", "iris")
    assert cache.children(("ns", "iris")).ksvcs == {"predictor": ksvc}
    core = _child("Service", "v1", "iris")
    cache.put_child(core)
    assert cache.children(("ns", "iris")).service == core
    assert cache.put_child(_child("Service", "v1", None)) is None
    cache.put_child(ksvc, deleted=True)
    cache.put_child(core, deleted=True)
    assert cache.children(("ns", "iris")).is_empty()
    with_fields = {**ksvc, "metadata": {**ksvc["metadata"], "managedFields": [{"manager": "x"}]}}
    cache.put_child(with_fields)
    assert "managedFields" not in cache.children(("ns", "iris")).ksvcs["predictor"]["metadata"]
    assert controller_owner({"metadata": {"ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "InferenceService", "name": "n",
         "controller": True}]}}) is None


def test_subset_tolerates_server_defaults_but_not_changes() -> None:
    desired = {"spec": {"containers": [{"image": "a", "args": ["--x"]}]}}
    defaulted = {"spec": {"containers": [{"image": "a", "args": ["--x"],
                                          "readinessProbe": {"tcpSocket": {}}}],
                          "timeoutSeconds": 300}}
    assert is_subset(desired, defaulted)
    assert not is_subset(desired, {"spec": {"containers": [{"image": "b", "args": ["--x"]}]}})
    assert not is_subset(desired, {"spec": {"containers": []}})


def test_spec_hash_is_stable_and_sensitive() -> None:
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "n"},
           "spec": {"a": 1, "b": [1, 2]}}
    reordered = {"kind": "Service", "apiVersion": "v1", "spec": {"b": [1, 2], "a": 1},
                 "metadata": {"name": "n"}}
    assert spec_hash(obj) == spec_hash(reordered)
    assert spec_hash(obj) != spec_hash({**obj, "spec": {"a": 1, "b": [2, 1]}})
    hashed = with_hash(obj)
    assert hashed["metadata"]["annotations"]["serving.kubeflow.org/spec-hash"] == spec_hash(obj)
    assert "annotations" not in obj["metadata"]


def test_config_store_keeps_last_good_value_of_a_broken_key() -> None:
    store = ConfigStore()
    changed, problems = store.update({"metadata": {"resourceVersion": "1"},
                                      "data": {"ingress": '{"ingressDomain": "models.io"}'}})
    assert changed and store.get().ingress.ingress_domain == "models.io"
    changed, problems = store.update({"metadata": {"resourceVersion": "2"},
                                      "data": {"ingress": "{not json"}})
    assert not changed
    assert store.get().ingress.ingress_domain == "models.io"
    assert any(p.key == "ingress" for p in problems)
    assert store.update({"metadata": {"resourceVersion": "2"}, "data": {}}) == (False, ())


async def test_urgent_keys_overtake_the_resync_backlog() -> None:
    order: list[str] = []

    async def handle(key: str) -> None:
        order.append(key)

    queue: WorkQueue[str] = WorkQueue(handle, workers=1)
    for i in range(5):
        queue.add(f"old-{i}", urgent=False)
    queue.add("old-3")  # promoted: an event arrived for it
    queue.add("new")
    queue.start()
    await asyncio.sleep(0.05)
    await queue.stop()
    assert order[:2] == ["old-3", "new"]
    assert sorted(order[2:]) == ["old-0", "old-1", "old-2", "old-4"]
    assert len(order) == 6


async def test_listed_isvc_whose_spec_was_never_handled_goes_before_the_resync() -> None:
    from kfserving_operator.operator.events import _isvc_event
    from kfserving_operator.operator.runtime import OperatorOptions, Runtime

    order: list[IsvcKey] = []

    async def reconcile(key: IsvcKey) -> None:
        order.append(key)

    runtime = Runtime(OperatorOptions(namespace="kfserving-system", webhook_mode="off"))
    runtime.queue = WorkQueue(reconcile, workers=1)

    def isvc(name: str, generation: int, observed: int | None) -> dict[str, Any]:
        status = {} if observed is None else {"observedGeneration": observed}
        return {"apiVersion": "serving.kubeflow.org/v1beta1", "kind": "InferenceService",
                "metadata": {"namespace": "ns", "name": name, "generation": generation,
                             "resourceVersion": str(generation)}, "status": status}

    # Listed before this replica leads: cached, not queued (a follower queues nothing).
    _isvc_event(runtime, None, isvc("handled", 2, 2))
    _isvc_event(runtime, None, isvc("changed-while-down", 3, 2))
    _isvc_event(runtime, None, isvc("created-while-down", 1, None))
    assert runtime.queue._queued == {}
    # Taking the lead resyncs everything, the never-handled specs first.
    runtime.queue.start()
    runtime.resync_all()
    await asyncio.sleep(0.05)
    await runtime.queue.stop()
    assert sorted(order[:2]) == [("ns", "changed-while-down"), ("ns", "created-while-down")]
    assert order[2:] == [("ns", "handled")]
