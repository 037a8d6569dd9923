"""The operator's informer against the real apiserver: listing, watching from the list's
version, a relist after 410 Gone that reports what was deleted meanwhile, and an object too
deep to decode that arrives pruned and recorded without stopping anything."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig

from kfserving_operator.api import constants as c
from kfserving_operator.k8s.api import KubeApi
from kfserving_operator.operator import informer as informer_module
from kfserving_operator.operator import poison
from kfserving_operator.operator.informer import Informer
from tests.support.cluster import Cluster

KSVC = "serving.knative.dev/v1"
GATEWAY_CRD = "httproutes.gateway.networking.k8s.io"


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


class CountingApi(KubeApi):
    """The real API, counting the LISTs an informer starts (a page each here)."""

    lists = 0

    def list_pages(self, *args: Any, **kwargs: Any) -> Any:
        self.lists += 1
        return super().list_pages(*args, **kwargs)


def _counting_api(cluster: Cluster) -> CountingApi:
    """With Gateway API's HTTPRoute as the type that is not served (known to the client)."""
    if cluster.kubectl("get", "crd", GATEWAY_CRD, "--ignore-not-found"):
        pytest.skip("Gateway API is installed in this cluster")
    return CountingApi(AsyncClient(config=KubeConfig.from_file(cluster.kubeconfig),
                                   field_manager="informer-test", trust_env=False))


async def test_a_type_found_missing_is_not_polled(cluster: Cluster, namespace: str,
                                                  monkeypatch: Any) -> None:
    """Told of its CRD by events (missing_poll None), an informer of a type that is not
    served looks once, then only when woken, and after a wake a bounded few times more."""
    monkeypatch.setattr(informer_module, "AFTER_WAKE_RECHECKS", (0.2, 0.4))
    recorder = Recorder(namespace)
    api = _counting_api(cluster)
    informer = Informer(api, c.GATEWAY_API_VERSION, "HTTPRoute", recorder.handle,
                        known=recorder.known, namespace=namespace, missing_poll=None)
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 20)
        assert informer.installed is False
        await asyncio.sleep(6)  # longer than the 5 s poll this replaced
        assert api.lists == 1
        informer.recheck()  # its CRD's event: look now, then after 0.2 and 0.4 s, no more
        await asyncio.sleep(2.5)
        assert api.lists == 4
        assert informer.installed is False
    finally:
        await informer.stop()
        await api.close()


async def test_a_namespaced_informer_polls_a_missing_type_slowly(cluster: Cluster,
                                                                 namespace: str) -> None:
    """Without CRD events (a namespace-scoped operator) a missing type is looked for every
    missing_poll seconds."""
    recorder = Recorder(namespace)
    api = _counting_api(cluster)
    informer = Informer(api, c.GATEWAY_API_VERSION, "HTTPRoute", recorder.handle,
                        known=recorder.known, namespace=namespace, missing_poll=0.5)
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 20)
        await asyncio.sleep(1.8)
        assert 3 <= api.lists <= 5
    finally:
        await informer.stop()
        await api.close()
