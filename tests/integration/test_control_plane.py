"""The platform itself: a real kube-apiserver with garbage collection."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable

from kubernetes import client, config, watch

from tests.support.cluster import Cluster, wait_for


def _api_client(cluster: Cluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=cluster.kubeconfig)


def test_server_reports_real_version(cluster: Cluster, report: Callable[[str], None]) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json"))["serverVersion"]
    report(f"kube-apiserver version: {version['gitVersion']} (go {version['goVersion']})")
    assert version["major"] == "1"
    assert version["gitVersion"].startswith("v1.")
    assert "master" not in version["gitVersion"]
    assert cluster.kubectl("get", "--raw", "/readyz").strip() == "ok"


def test_create_and_watch_custom_object(cluster: Cluster, namespace: str,
                                        report: Callable[[str], None]) -> None:
    api = client.CustomObjectsApi(_api_client(cluster))
    name = f"watched-{uuid.uuid4().hex[:6]}"
    seen: list[tuple[str, str]] = []
    started = threading.Event()

    def watch_services() -> None:
        stream = watch.Watch()
        started.set()
        for event in stream.stream(
            api.list_namespaced_custom_object, "serving.knative.dev", "v1", namespace,
            "services", timeout_seconds=20,
        ):
            seen.append((event["type"], event["object"]["metadata"]["name"]))
            if event["type"] == "MODIFIED":
                stream.stop()

    watcher = threading.Thread(target=watch_services)
    watcher.start()
    started.wait()
    body = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"image": "example/model:1"}]}}},
    }
    wait_for(lambda: _create(api, namespace, body), message="custom object create")
    api.patch_namespaced_custom_object_status(
        "serving.knative.dev", "v1", namespace, "services", name,
        {"status": {"url": f"http://{name}.{namespace}.example.com"}},
    )
    watcher.join(timeout=30)
    assert ("ADDED", name) in seen
    assert ("MODIFIED", name) in seen
    stored = api.get_namespaced_custom_object(
        "serving.knative.dev", "v1", namespace, "services", name
    )
    assert stored["status"]["url"] == f"http://{name}.{namespace}.example.com"
    report(f"created {namespace}/{name} and watched it: {seen}")


def _create(api: client.CustomObjectsApi, namespace: str, body: dict[str, object]) -> bool:
    api.create_namespaced_custom_object("serving.knative.dev", "v1", namespace, "services", body)
    return True


def test_garbage_collector_deletes_owned_objects(cluster: Cluster, namespace: str) -> None:
    core = client.CoreV1Api(_api_client(cluster))
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name="owned",
                owner_references=[client.V1OwnerReference(
                    api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid,
                    controller=True, block_owner_deletion=True,
                )],
            )
        ),
    )
    core.delete_namespaced_config_map("owner", namespace)

    def owned_gone() -> bool:
        names = [c.metadata.name for c in core.list_namespaced_config_map(namespace).items]
        return "owned" not in names

    wait_for(owned_gone, timeout=60, message="garbage collection of the owned ConfigMap")
