"""Test-side access to the cluster: start or reuse it, run kubectl, install CRDs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kfserving_operator.cluster import netns
from kfserving_operator.cluster.localplane import (
    ControlPlaneState,
    LocalControlPlane,
    find_tool,
    issue_user_kubeconfig,
    process_alive,
    project_root,
)
from kfserving_operator.webhooks.legacy_registration import (
    ISVC_CRD_NAME,
    shipped_conversion_patch,
)

ROOT = project_root()
DEV_CRDS = ROOT / "hack" / "dev-crds"
PROJECT_CRDS = ROOT / "crds"


class KubectlError(RuntimeError):
    """kubectl exited non-zero; ``stderr`` holds its message."""

    def __init__(self, args: tuple[str, ...], returncode: int, stdout: str, stderr: str) -> None:
        super().__init__(f"kubectl {' '.join(args)} failed ({returncode}): {stderr.strip()}")
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


@dataclass
class Cluster:
    """A reachable cluster: its kubeconfig, kubectl, and (when local) its state.

    ``prefix`` is what runs a command where the cluster is reachable: empty on the host's
    loopback, ``nsenter ...`` for the Knative lane in its own network namespace.
    """

    kubeconfig: str
    kubectl_path: Path
    local_state: ControlPlaneState | None
    prefix: tuple[str, ...] = ()

    @property
    def is_local(self) -> bool:
        return self.local_state is not None

    @property
    def knative_version(self) -> str | None:
        """The real Knative Serving the local lane runs, if it does."""
        return self.local_state.knative_version if self.local_state else None

    def command(self, *args: str) -> list[str]:
        """argv for a kubectl call against this cluster."""
        return [*self.prefix, str(self.kubectl_path), "--kubeconfig", self.kubeconfig, *args]

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            self.command(*args),
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise KubectlError(args, result.returncode, result.stdout, result.stderr)
        return result.stdout

    def apply_yaml(self, manifest: str | dict[str, Any], namespace: str | None = None) -> str:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        return self.kubectl(*args, input=text)

    def get_json(self, *args: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json"))
        return out

    def user_kubeconfig(self, user: str, groups: tuple[str, ...], path: Path) -> str:
        """A kubeconfig for a distinct user, so its requests can be told apart."""
        if self.local_state is None:
            return self.kubeconfig
        return str(issue_user_kubeconfig(self.local_state, user, groups, path))


def _kubectl_binary() -> Path:
    try:
        return find_tool("kubectl")
    except Exception:
        found = shutil.which("kubectl")
        if not found:
            raise
        return Path(found)


@contextmanager
def start_cluster() -> Iterator[Cluster]:
    """Yield the cluster under test, starting the local one when no kubeconfig is given."""
    external = os.environ.get("KFSERVING_TEST_KUBECONFIG")
    if external:
        yield Cluster(external, _kubectl_binary(), None)
        return
    state_dir = Path(os.environ.get("KFSERVING_TEST_CLUSTER_DIR", ROOT / ".cache" / "cluster-test"))
    plane = LocalControlPlane(state_dir)
    state = plane.up()
    client = Cluster(state.kubeconfig, _kubectl_binary(), state)
    version = client.kubectl("version", "-o", "json")
    server = json.loads(version).get("serverVersion", {}).get("gitVersion")
    print(f"\nlocal control plane: {state.apiserver_url} (server {server})")
    try:
        yield client
    finally:
        if not os.environ.get("KFSERVING_KEEP_TEST_CLUSTER"):
            plane.down()


@contextmanager
def bare_local_cluster(state_dir: Path, *, audit_reads: bool = False) -> Iterator[Cluster]:
    """A second, private control plane with only our CRD: no Knative, no Istio.

    For tests that need a cluster of their own (missing dependencies, Service-referenced
    webhooks that would block the shared cluster). ``audit_reads``: the audit log has GETs
    and LISTs too (:meth:`OperatorProcess.reads_since`).
    """
    plane = LocalControlPlane(state_dir, audit_reads=audit_reads)
    state = plane.up()
    try:
        cluster = Cluster(state.kubeconfig, _kubectl_binary(), state)
        for crd in PROJECT_CRDS.glob("*.yaml"):
            cluster.kubectl("apply", "--server-side", "-f", str(crd))
        wait_established(cluster, "inferenceservices.serving.kubeflow.org")
        yield cluster
    finally:
        plane.down()


@contextmanager
def start_knative_lane(state_dir: Path) -> Iterator[Cluster]:
    """The local plane with real Knative Serving, in its own network namespace.

    Started through the CLI (``cluster up --knative``), because joining the namespace is a
    process-wide change this test process must not make; kubectl and the operator then run
    inside it through ``nsenter``. Stopped at the end unless ``KFSERVING_KEEP_TEST_CLUSTER``.
    """
    result = subprocess.run(
        [sys.executable, "-m", "kfserving_operator", "cluster", "up", "--knative",
         "--state-dir", str(state_dir)],
        capture_output=True, text=True, timeout=600,
    )
    plane = LocalControlPlane(state_dir)
    if result.returncode != 0:
        plane.down()
        raise RuntimeError(f"cluster up --knative failed:\n{result.stdout}\n{result.stderr}")
    print(f"\n{result.stdout}")
    state = plane.state()
    assert state is not None and state.netns_pid is not None
    try:
        yield Cluster(state.kubeconfig, _kubectl_binary(), state, tuple(plane.join_prefix()))
    finally:
        if not os.environ.get("KFSERVING_KEEP_TEST_CLUSTER"):
            plane.down()
            # `cluster down` must leave nothing behind: every recorded process has exited.
            left = [f"{name} (pid {pid})" for name, pid in state.pids.items()
                    if process_alive(pid, name)]
            if netns.holder_alive(state.netns_pid, state_dir.resolve()):
                left.append(f"network namespace holder (pid {state.netns_pid})")
            assert not left, f"still running after cluster down: {', '.join(left)}"


def install_crds(cluster: Cluster, *, stand_ins: bool = True) -> None:
    """Install our CRDs (and, unless told not to, the Knative/Istio stand-ins); wait for them."""
    # A CRD a local operator left pointing at its loopback conversion webhook (it was
    # killed, or a kept test cluster is reused) cannot be re-applied from the file as is.
    cluster.kubectl("patch", "crd", ISVC_CRD_NAME, "--type=merge", "-p",
                    json.dumps(shipped_conversion_patch()), check=False)
    files = sorted(PROJECT_CRDS.glob("*.yaml"))
    if stand_ins and not os.environ.get("KFSERVING_TEST_SKIP_DEV_CRDS"):
        files += sorted(DEV_CRDS.glob("*.yaml"))
    names = []
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                names.append(doc["metadata"]["name"])
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    for name in names:
        wait_established(cluster, name)


def wait_established(cluster: Cluster, crd_name: str, timeout: float = 60) -> None:
    """Wait until the CRD is Established and its resource shows up in discovery."""
    def established() -> bool:
        out = cluster.kubectl("get", "crd", crd_name, "-o", "json", check=False)
        if not out:
            return False
        conditions = json.loads(out).get("status", {}).get("conditions") or []
        return any(c.get("type") == "Established" and c.get("status") == "True"
                   for c in conditions)

    wait_for(established, timeout=timeout, message=f"{crd_name} to be Established")
    # Discovery can lag the Established condition by a moment.
    plural, group = crd_name.split(".", 1)

    def served() -> bool:
        resources = cluster.kubectl("api-resources", f"--api-group={group}", "-o", "name",
                                    check=False)
        return any(line.split(".")[0] == plural for line in resources.split())

    wait_for(served, timeout=timeout, message=f"{crd_name} to be served")


def wait_for(predicate: Any, timeout: float = 30, interval: float = 0.2,
             message: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {message}; last value: {last!r}")


@contextmanager
def fresh_namespace(cluster: Cluster, annotations: dict[str, str] | None = None
                    ) -> Iterator[str]:
    """A namespace of a random name for one test, deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.apply_yaml({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": name, "annotations": annotations or {}}})
    try:
        yield name
    finally:
        subprocess.run(cluster.command("delete", "namespace", name, "--wait=false",
                                       "--ignore-not-found"),
                       check=False, capture_output=True)
