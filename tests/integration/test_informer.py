"""The operator's informer against the real apiserver: listing, watching from the list's
version, a relist after 410 Gone that reports what was deleted meanwhile, and an object too
deep to decode that arrives pruned and recorded without stopping anything."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig

from kfserving_operator.api import constants as c
from kfserving_operator.k8s.api import KubeApi
from kfserving_operator.operator import poison
from kfserving_operator.operator.informer import Informer
from tests.support.cluster import Cluster

KSVC = "serving.knative.dev/v1"


def ksvc(name: str, namespace: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": KSVC, "kind": "Service",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {c.ISVC_LABEL: "informer-test"}},
            "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}, **(extra or {})}}


class Recorder:
    """The handler side: what a cache would hold, and every event in order."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.events: list[tuple[str | None, str]] = []
        self.held: dict[str, dict[str, Any]] = {}
        self.changed = asyncio.Event()

    def handle(self, type: str | None, obj: dict[str, Any]) -> None:
        if obj["metadata"].get("namespace") != self.namespace:
            return
        name = obj["metadata"]["name"]
        self.events.append((type, name))
        if type == "DELETED":
            self.held.pop(name, None)
        else:
            self.held[name] = obj
        self.changed.set()

    def known(self) -> list[dict[str, Any]]:
        return list(self.held.values())

    async def wait(self, predicate: Any, timeout: float = 20) -> None:
        async def until() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(until(), timeout)


def _api(cluster: Cluster) -> KubeApi:
    return KubeApi(AsyncClient(config=KubeConfig.from_file(cluster.kubeconfig),
                               field_manager="informer-test", trust_env=False))


def _create(cluster: Cluster, obj: dict[str, Any], deep_levels: int = 0) -> None:
    """Create ``obj``; with ``deep_levels``, its spec.x nested that deep (beyond what Python's
    own json module can write, so the text is put together by hand)."""
    text = json.dumps(obj)
    if deep_levels:
        deep = '{"d":' * deep_levels + '"bottom"' + "}" * deep_levels
        text = text[:-2] + f', "x": {deep}' + "}}"
    cluster.kubectl("create", "-f", "-", input=text)


async def test_lists_then_watches_from_the_listed_version(cluster: Cluster,
                                                          namespace: str) -> None:
    _create(cluster, ksvc("before", namespace))
    recorder = Recorder(namespace)
    api = _api(cluster)
    informer = Informer(api, KSVC, "Service", recorder.handle, known=recorder.known,
                        label_selector=c.ISVC_LABEL)
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 20)
        assert (None, "before") in recorder.events
        assert informer.installed is True
        await asyncio.to_thread(_create, cluster, ksvc("after", namespace))
        await recorder.wait(lambda: ("ADDED", "after") in recorder.events)
        await asyncio.to_thread(cluster.kubectl, "delete", "services.serving.knative.dev",
                                "before", "-n", namespace)
        await recorder.wait(lambda: ("DELETED", "before") in recorder.events)
        # Each change exactly once: the watch started where the listing ended.
        assert recorder.events.count(("ADDED", "after")) == 1
        assert recorder.events.count((None, "before")) == 1
    finally:
        await informer.stop()
        await api.close()


async def test_relist_after_expiry_reports_deletions_missed(cluster: Cluster,
                                                           namespace: str) -> None:
    _create(cluster, ksvc("stays", namespace))
    recorder = Recorder(namespace)
    # What a handler held before an outage: "stays", and "ghost", deleted while unwatched.
    recorder.held["ghost"] = ksvc("ghost", namespace)
    api = _api(cluster)
    informer = Informer(api, KSVC, "Service", recorder.handle, known=recorder.known,
                        label_selector=c.ISVC_LABEL)
    informer.synced.set()
    informer._version = "1"  # far older than the apiserver's watch cache: 410 Gone
    informer.start()
    try:
        await recorder.wait(lambda: ("DELETED", "ghost") in recorder.events)
        assert (None, "stays") in recorder.events
        assert "stays" in recorder.held and "ghost" not in recorder.held
    finally:
        await informer.stop()
        await api.close()


async def test_object_too_deep_to_decode_arrives_pruned_and_recorded(cluster: Cluster,
                                                                     namespace: str) -> None:
    """In a LIST page and on the watch: the deep object comes through pruned and recorded
    as poison (the handlers skip and report it); everything around it is intact."""
    recorder = Recorder(namespace)
    api = _api(cluster)
    informer = Informer(api, KSVC, "Service", recorder.handle, known=recorder.known,
                        label_selector=c.ISVC_LABEL)
    await asyncio.to_thread(_create, cluster, ksvc("deep-listed", namespace), 1500)
    await asyncio.to_thread(_create, cluster, ksvc("fine", namespace))
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 30)
        assert (None, "fine") in recorder.events
        assert poison.poisoned(recorder.held["deep-listed"]) is not None
        assert poison.poisoned(recorder.held["fine"]) is None
        await asyncio.to_thread(_create, cluster, ksvc("deep-watched", namespace), 1500)
        await asyncio.to_thread(_create, cluster, ksvc("fine-later", namespace))
        await recorder.wait(lambda: ("ADDED", "fine-later") in recorder.events)
        assert poison.poisoned(recorder.held["deep-watched"]) is not None
        assert poison.poisoned(recorder.held["fine-later"]) is None
    finally:
        await informer.stop()
        await api.close()
