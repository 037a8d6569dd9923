"""The KWOK failure stages (hack/kwok/failure-stages.yaml) against a real kube-apiserver.

KWOK fakes the kubelet of one Node; these tests bind pods to it directly (no scheduler) and
check that each stage leaves the pod exactly as a kubelet reports that failure, and that the
operator's pure core reads the intended cause from it. Pods without the annotation are left
to kwok's own stages and become Ready. Skipped where kwok has not been built (`make tools`).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfserving_operator.cluster.localplane import find_tool, free_port, project_root
from kfserving_operator.reconcile.failure import FROM_SERVICE, revision_failure
from tests.support.cluster import Cluster, wait_for

STAGES = project_root() / "hack" / "kwok" / "failure-stages.yaml"
KWOK_VERSION = "v0.8.0"
NODE = "kwok-failure-stages"
REVISION = "model-00001"
NO_RACE = {"pod-ready.stage.kwok.x-k8s.io/weight": "0",
           "pod-init-container-running.stage.kwok.x-k8s.io/weight": "0"}


def _kwok_binary() -> Path:
    try:
        return find_tool("kwok")
    except Exception:
        cached = project_root() / ".cache" / "tools" / "kwok" / KWOK_VERSION / "kwok"
        if cached.exists():
            return cached
        pytest.skip("kwok is not built (make tools)")


def _kwok_stages() -> str:
    """kwok's own node and pod stages, from the module the kwok build downloaded."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is needed to find kwok's module")
    modcache = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True,
                              check=True).stdout.strip()
    root = Path(modcache) / f"sigs.k8s.io/kwok@{KWOK_VERSION}/kustomize/stage"
    if not root.is_dir():
        pytest.skip(f"kwok's module is not downloaded ({root})")
    documents = []
    for group in ("node/fast", "node/heartbeat", "pod/general"):
        kustomization = yaml.safe_load((root / group / "kustomization.yaml").read_text())
        documents += [(root / group / name).read_text() for name in kustomization["resources"]]
    return "\n---\n".join(documents)


@pytest.fixture(scope="module")
def kwok(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    binary = _kwok_binary()
    state = tmp_path_factory.mktemp("kwok")
    config = state / "stages.yaml"
    config.write_text(_kwok_stages() + "\n---\n" + STAGES.read_text())
    cluster.apply_yaml({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE, "annotations": {"kwok.x-k8s.io/node": "fake"},
                     "labels": {"type": "kwok"}},
        "spec": {"taints": [{"key": "kwok.x-k8s.io/node", "value": "fake",
                             "effect": "NoSchedule"}]},
    })
    log = (state / "kwok.log").open("w")
    process = subprocess.Popen([
        str(binary), f"--kubeconfig={cluster.kubeconfig}", f"--config={config}",
        "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--cidr=10.244.0.0/16", "--node-ip=10.244.0.1",
        f"--server-address=127.0.0.1:{free_port()}",
    ], stdout=log, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        cluster.kubectl("delete", "node", NODE, "--ignore-not-found", check=False)


def model_pod(namespace: str, name: str, annotations: dict[str, str],
              memory: str = "300Mi") -> dict[str, Any]:
    """A pod shaped like a Knative revision's: storage-initializer, model server, queue-proxy."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations,
                     "labels": {"serving.knative.dev/revision": REVISION}},
        "spec": {
            "nodeName": NODE,
            "automountServiceAccountToken": False,
            "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists",
                             "effect": "NoSchedule"}],
            "initContainers": [{"name": "storage-initializer",
                                "image": "kserve/storage-initializer:v0.6.1"}],
            "containers": [
                {"name": "kserve-container", "image": "kserve/sklearnserver:v0.6.1",
                 "resources": {"limits": {"memory": memory}}},
                {"name": "queue-proxy", "image": "knative/queue:v1.15"},
            ],
        },
    }


def failed_ksvc() -> dict[str, Any]:
    return {"status": {"latestCreatedRevisionName": REVISION, "conditions": [
        {"type": "ConfigurationsReady", "status": "False", "reason": "RevisionFailed",
         "message": f'Revision "{REVISION}" failed with message: .'}]}}


def settled(cluster: Cluster, namespace: str, name: str, ready: bool = False) -> dict[str, Any]:
    """The pod once a failure stage (or, with ``ready``, kwok's pod-ready) has run."""

    def check() -> dict[str, Any] | None:
        pod = cluster.get_json("pod", name, "-n", namespace)
        status = pod.get("status") or {}
        statuses = status.get("containerStatuses", []) + status.get("initContainerStatuses", [])
        if ready:
            conds = {c["type"]: c["status"] for c in status.get("conditions", [])}
            return pod if conds.get("Ready") == "True" else None
        failed = any((s.get("lastState") or {}).get("terminated")
                     or (s.get("state", {}).get("waiting") or {}).get("reason")
                     == "ImagePullBackOff" for s in statuses)
        return pod if failed else None

    result: dict[str, Any] = wait_for(check, timeout=30, message=f"pod {name} settled")
    return result


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    status = pod["status"]
    found: dict[str, Any] = next(
        s for s in status.get("containerStatuses", []) + status.get("initContainerStatuses", [])
        if s["name"] == name)
    return found


@pytest.mark.usefixtures("kwok")
class TestFailureStages:
    def test_image_pull(self, cluster: Cluster, namespace: str) -> None:
        cluster.apply_yaml(model_pod(namespace, "image", {
            "fail.kfserving-operator.test/cause": "image-pull", **NO_RACE}))
        pod = settled(cluster, namespace, "image")
        assert pod["status"]["phase"] == "Pending"
        waiting = container(pod, "kserve-container")["state"]["waiting"]
        assert waiting["reason"] == "ImagePullBackOff"
        assert 'Back-off pulling image "kserve/sklearnserver:v0.6.1"' in waiting["message"]
        assert "running" in container(pod, "queue-proxy")["state"]
        assert container(pod, "storage-initializer")["state"]["terminated"]["exitCode"] == 0
        found = revision_failure(failed_ksvc(), None, (pod,))
        assert found is not None and found.reason == "ImagePullBackOff"

    def test_crash_loop_with_exit_code(self, cluster: Cluster, namespace: str) -> None:
        cluster.apply_yaml(model_pod(namespace, "crash", {
            "fail.kfserving-operator.test/cause": "crash-loop",
            "fail.kfserving-operator.test/exit-code": "3",
            "fail.kfserving-operator.test/message": "model file not found", **NO_RACE}))
        pod = settled(cluster, namespace, "crash")
        assert pod["status"]["phase"] == "Running"
        status = container(pod, "kserve-container")
        assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        terminated = status["lastState"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"], terminated["message"]) == (
            3, "Error", "model file not found")
        found = revision_failure(failed_ksvc(), None, (pod,))
        assert found is not None and found.reason == "CrashLoopBackOff"
        assert "exit code 3: model file not found" in found.message

    def test_oom_killed(self, cluster: Cluster, namespace: str) -> None:
        cluster.apply_yaml(model_pod(namespace, "oom", {
            "fail.kfserving-operator.test/cause": "oom-killed", **NO_RACE}))
        pod = settled(cluster, namespace, "oom")
        terminated = container(pod, "kserve-container")["lastState"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (137, "OOMKilled")
        found = revision_failure(failed_ksvc(), None, (pod,))
        assert found is not None and found.reason == "OOMKilled"
        assert "memory limit of 300Mi" in found.message

    def test_storage_initializer(self, cluster: Cluster, namespace: str) -> None:
        cluster.apply_yaml(model_pod(namespace, "init", {
            "fail.kfserving-operator.test/cause": "storage-initializer",
            "fail.kfserving-operator.test/message": "403 Forbidden", **NO_RACE}))
        pod = settled(cluster, namespace, "init")
        assert pod["status"]["phase"] == "Pending"
        init = container(pod, "storage-initializer")
        assert init["state"]["terminated"]["exitCode"] == 1
        assert container(pod, "kserve-container")["state"]["waiting"]["reason"] == (
            "PodInitializing")
        conds = {c["type"]: c for c in pod["status"]["conditions"]}
        assert conds["Initialized"]["status"] == "False"
        found = revision_failure(failed_ksvc(), None, (pod,))
        assert found is not None and found.reason == "StorageInitializerFailed"
        assert "(exit code 1): 403 Forbidden" in found.message

    def test_failed_pods_stay_failed(self, cluster: Cluster, namespace: str) -> None:
        """Each stage runs once: the pod is not patched again and again."""
        cluster.apply_yaml(model_pod(namespace, "once", {
            "fail.kfserving-operator.test/cause": "crash-loop", **NO_RACE}))
        first = settled(cluster, namespace, "once")
        # kwok's stage delays are 0.2 to 6 s; a looping stage would have moved it by now.
        time.sleep(8)
        again = cluster.get_json("pod", "once", "-n", namespace)
        assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]

    def test_pods_without_the_annotation_become_ready(self, cluster: Cluster,
                                                      namespace: str) -> None:
        cluster.apply_yaml(model_pod(namespace, "healthy", {}))
        pod = settled(cluster, namespace, "healthy", ready=True)
        assert pod["status"]["phase"] == "Running"
        # Nothing in a healthy pod to explain: the cause falls back to Knative's message.
        found = revision_failure(failed_ksvc(), None, (pod,))
        assert found is not None and found.source == FROM_SERVICE
