"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

Our machines and CI have no container engine, so kind and minikube cannot run. Instead the
project builds the upstream binaries from Go modules (``hack/build-tools.sh``) and this module
starts them the way controller-runtime's envtest does: free loopback ports, TLS with a
throw-away CA, RBAC, an admin client-certificate kubeconfig, and etcd data on tmpfs.
kube-controller-manager runs too, so garbage collection of owned objects is real.

With ``lane=True`` (``cluster up --knative``) the plane runs inside a network namespace of
its own that has only loopback (:mod:`kfserving_operator.cluster.netns`), and real Knative
Serving runs beside it (:mod:`kfserving_operator.cluster.lane`). Without it, the plane runs
on the host's loopback, as the fast integration tests use it.

State lives in one directory (``state.json`` plus logs and certificates) so that a later
``cluster status``, ``cluster exec`` or ``cluster down`` from another process finds what
``cluster up`` started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from kfserving_operator.cluster import netns, node

# Re-exported: callers that start or stop the plane find these here too.
from kfserving_operator.cluster.common import SERVICE_CIDR
from kfserving_operator.cluster.common import ControlPlaneState as ControlPlaneState
from kfserving_operator.cluster.common import free_port as free_port
from kfserving_operator.cluster.common import issue_user_kubeconfig as issue_user_kubeconfig
from kfserving_operator.cluster.common import process_alive as process_alive
from kfserving_operator.cluster.common import project_root as project_root
from kfserving_operator.pki import (
    issue_client_cert,
    issue_serving_cert,
    new_ca,
)

TOOLS = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
START_TIMEOUT_SECONDS = 120.0


class ControlPlaneError(RuntimeError):
    """The control plane could not be started or found."""


def default_state_dir() -> Path:
    """Where ``cluster up`` keeps its state; ``KFSERVING_CLUSTER_DIR`` overrides it."""
    override = os.environ.get("KFSERVING_CLUSTER_DIR")
    return Path(override) if override else project_root() / ".cache" / "cluster"


def tools_bin_dir() -> Path:
    """Directory of the built tools; ``KFSERVING_TOOLS_BIN`` overrides it."""
    override = os.environ.get("KFSERVING_TOOLS_BIN")
    return Path(override) if override else project_root() / ".cache" / "bin"


def find_tool(name: str) -> Path:
    """Absolute path of a built tool, falling back to ``PATH``."""
    candidate = tools_bin_dir() / name
    if candidate.exists():
        return candidate.resolve()
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ControlPlaneError(
        f"{name} not found in {tools_bin_dir()} or on PATH; run `make tools` to build it"
    )


def find_node_images() -> Path:
    """The images and models ``hack/build-node-images.sh`` made for the lane's real node."""
    path = project_root() / ".cache" / "node-images" / "current"
    if not (path / "images.txt").exists():
        raise ControlPlaneError(
            f"the real node's images are not built ({path} is missing): run "
            "`bash hack/build-tools.sh lane` (make run and make tools do)")
    return path.resolve()


def _https_get(url: str, ca_file: str, cert: tuple[str, str] | None = None) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=ca_file)
    if cert:
        context.load_cert_chain(*cert)
    request = urllib.request.Request(url)
    try:
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")


def _clean_env() -> dict[str, str]:
    """The environment for the servers: no proxies, so loopback webhooks are reached directly."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


class LocalControlPlane:
    """Start, find, check and stop the loopback control plane kept in ``state_dir``."""

    def __init__(self, state_dir: Path | None = None, *, audit_reads: bool = False) -> None:
        self.state_dir = (state_dir or default_state_dir()).resolve()
        # Also log GETs and LISTs (never watches, nor the apiserver's own loopback requests),
        # for tests and benchmarks that count a client's reads.
        self.audit_reads = audit_reads

    # -- inspection -------------------------------------------------------------------------

    def state(self) -> ControlPlaneState | None:
        return ControlPlaneState.load(self.state_dir)

    def is_healthy(self) -> bool:
        """All processes alive and the apiserver answers ``/readyz`` with ``ok``."""
        state = self.state()
        if state is None:
            return False
        if state.netns_pid is not None:
            if not netns.holder_alive(state.netns_pid, self.state_dir):
                return False
            self.enter_namespace(state)
        for name, pid in state.pids.items():
            if not process_alive(pid, name):
                return False
        try:
            return self._readyz_ok(state)
        except OSError:
            return False

    def _api_get(self, state: ControlPlaneState, path: str) -> tuple[int, str]:
        """GET ``path`` from the apiserver as the admin user."""
        pki = self.state_dir / "pki"
        return _https_get(f"{state.apiserver_url}{path}", str(pki / "serving-ca.crt"),
                          (str(pki / "admin.crt"), str(pki / "admin.key")))

    def describe(self) -> str:
        """A human-readable status report."""
        state = self.state()
        if state is None:
            return f"no local control plane recorded in {self.state_dir}"
        lines = [f"state: {self.state_dir}", f"apiserver: {state.apiserver_url}"]
        if state.netns_pid is not None:
            holder_up = netns.holder_alive(state.netns_pid, self.state_dir)
            lines.append(f"network namespace (only lo): holder pid {state.netns_pid} "
                         f"{'running' if holder_up else 'NOT running'}")
            if not holder_up:
                return "\n".join(lines)
            self.enter_namespace(state)
        if state.knative_version:
            lines.append(f"knative serving: {state.knative_version}")
        for name, pid in state.pids.items():
            alive = "running" if process_alive(pid, name) else "NOT running"
            lines.append(f"{name}: pid {pid} {alive}")
        try:
            code, body = self._api_get(state, "/readyz")
            lines.append(f"readyz: {code} {body.strip()[:200]}")
            code, body = self._api_get(state, "/version")
            if code == 200:
                lines.append(f"version: {json.loads(body).get('gitVersion')}")
        except OSError as exc:
            lines.append(f"readyz: unreachable ({exc})")
        lines.append(f"KUBECONFIG={state.kubeconfig}")
        return "\n".join(lines)

    def enter_namespace(self, state: ControlPlaneState | None = None) -> None:
        """Move this process into the plane's network namespace (no-op without one).

        Needed before talking to an isolated plane from Python; subprocesses started
        afterwards inherit it. Call it before starting threads.
        """
        state = state or self.state()
        if state is None or state.netns_pid is None:
            return
        if not netns.holder_alive(state.netns_pid, self.state_dir):
            raise ControlPlaneError(
                f"the network namespace of the cluster in {self.state_dir} is gone (its holder, "
                f"pid {state.netns_pid}, is not running); `cluster down` then `cluster up "
                "--knative` starts a new one")
        if not netns.same_namespace(state.netns_pid):
            netns.enter(state.netns_pid)

    def join_prefix(self) -> list[str]:
        """The argv prefix that runs a command where the plane is reachable."""
        state = self.state()
        if state is None or state.netns_pid is None:
            return []
        return netns.join_prefix(state.netns_pid)

    # -- lifecycle --------------------------------------------------------------------------

    def up(self, timeout: float = START_TIMEOUT_SECONDS, *, lane: bool = False,
           progress: Callable[[str], None] = lambda _: None) -> ControlPlaneState:
        """Start the control plane, or reuse a healthy one; return its state.

        With ``lane``, the plane and the Knative lane start inside a new isolated network
        namespace, and this process enters it (see :meth:`enter_namespace`). A healthy
        plane is reused when it is what was asked for (a lane also serves a plain request);
        otherwise it is stopped first.
        """
        existing = self.state()
        if existing is not None and self.is_healthy():
            if existing.knative_version or not lane:
                return existing
            progress(f"stopping the plane in {self.state_dir}: it runs without Knative")
        if existing is not None:
            self.down()
        binaries = {name: find_tool(name) for name in TOOLS}
        if lane:
            from kfserving_operator.cluster import lane as knative_lane

            binaries.update({name: find_tool(name) for name in knative_lane.LANE_TOOLS})
            modules = knative_lane.upstream_modules(project_root())
            node_images = find_node_images()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        netns_pid = None
        if lane:
            netns_pid = netns.start_holder(self.state_dir)
            try:
                netns.enter(netns_pid)
                netns.check_isolated()
            except BaseException:
                netns.stop_holder(netns_pid, self.state_dir)
                raise
            progress(f"isolated network namespace (only lo) held by pid {netns_pid}")
        pki = self.state_dir / "pki"
        pki.mkdir(exist_ok=True)
        logs = self.state_dir / "logs"
        logs.mkdir(exist_ok=True)
        for old_log in logs.glob("*.log*"):  # a new cluster: logs of the last one mislead
            old_log.unlink()
        self._write_pki(pki)
        self._write_audit_policy(self.state_dir / "audit-policy.yaml")

        shm = Path("/dev/shm")
        etcd_data = Path(
            tempfile.mkdtemp(prefix="kfserving-etcd-", dir=shm if shm.is_dir() else None)
        )
        etcd_port, etcd_peer_port, api_port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        api_url = f"https://127.0.0.1:{api_port}"
        kubeconfig = self.state_dir / "kubeconfig"
        state = ControlPlaneState(
            state_dir=str(self.state_dir),
            kubeconfig=str(kubeconfig),
            apiserver_url=api_url,
            etcd_url=etcd_url,
            etcd_data_dir=str(etcd_data),
            pids={},
            netns_pid=netns_pid,
        )
        state.save()
        self._write_kubeconfig(kubeconfig, api_url, pki)
        try:
            state.pids["etcd"] = self.spawn(
                logs / "etcd.log",
                [
                    str(binaries["etcd"]),
                    f"--data-dir={etcd_data}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls=http://127.0.0.1:{etcd_peer_port}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer_port}",
                    f"--initial-cluster=default=http://127.0.0.1:{etcd_peer_port}",
                    "--unsafe-no-fsync=true",
                    "--log-level=warn",
                ],
            )
            state.save()
            self.wait_for(lambda: self._etcd_healthy(etcd_url), timeout, "etcd", logs)
            state.pids["kube-apiserver"] = self.spawn(
                logs / "kube-apiserver.log",
                [str(binaries["kube-apiserver"]), *self._apiserver_args(pki, etcd_url, api_port)],
            )
            state.save()
            self.wait_for(
                lambda: self._readyz_ok(state), timeout, "kube-apiserver", logs
            )
            state.pids["kube-controller-manager"] = self.spawn(
                logs / "kube-controller-manager.log",
                [
                    str(binaries["kube-controller-manager"]),
                    f"--kubeconfig={kubeconfig}",
                    f"--authentication-kubeconfig={kubeconfig}",
                    f"--authorization-kubeconfig={kubeconfig}",
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={free_port()}",
                    f"--root-ca-file={pki / 'serving-ca.crt'}",
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    # The node-lifecycle controller lifts the not-ready taint of the lane's
                    # fake Node, as in a real cluster; without nodes it is not needed.
                    "--controllers=*,-nodeipam,-cloud-node-lifecycle,-route,-service"
                    + ("" if lane else ",-nodelifecycle"),
                    "--v=1",
                ],
            )
            state.save()
            self.wait_for(
                lambda: process_alive(state.pids["kube-controller-manager"],
                                       "kube-controller-manager")
                and self._controller_manager_started(logs),
                timeout,
                "kube-controller-manager",
                logs,
            )
            progress(f"control plane ready at {api_url}")
            if lane:
                knative_lane.KnativeLane(self, state, binaries, modules, node_images,
                                         progress).start()
        except BaseException:
            self.down()
            raise
        return state

    def down(self) -> list[str]:
        """Stop every process this state directory records; return what was stopped."""
        state = self.state()
        stopped: list[str] = []
        if state is None:
            return stopped
        # Reverse start order: the controller manager and apiserver before etcd. What the
        # lane started after containerd (the kubelet, Knative, the data path) goes at
        # once, so their graceful drains overlap; then the pods' processes, then the rest.
        pending = list(reversed(list(state.pids.items())))
        if "containerd" in state.pids:
            cut = next(i for i, (name, _) in enumerate(pending) if name == "containerd")
            stopped += _stop_together(pending[:cut])
            # The pods' processes outlive containerd's shims unless they are killed while
            # containerd still answers.
            node.stop_workloads(self.state_dir)
            pending = pending[cut:]
        for name, pid in pending:
            stopped += _stop_together([(name, pid)])
        if "containerd" in state.pids:
            node.unmount_node(self.state_dir, state.node_cgroup_root)
        if state.netns_pid is not None and netns.stop_holder(state.netns_pid, self.state_dir):
            stopped.append(f"network namespace holder (pid {state.netns_pid})")
        shutil.rmtree(state.etcd_data_dir, ignore_errors=True)
        (self.state_dir / "state.json").unlink(missing_ok=True)
        return stopped

    # -- helpers ----------------------------------------------------------------------------

    def spawn(self, log_path: Path, args: list[str], env: dict[str, str] | None = None) -> int:
        """Start a server in its own session, logging to ``log_path``; return its pid."""
        log = log_path.open("ab")
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**_clean_env(), **(env or {})},
            start_new_session=True,  # survives the CLI that started it; down() kills the group
        )
        log.close()
        return process.pid

    def wait_for(self, check: Callable[[], bool], timeout: float, what: str,
                  logs: Path) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except OSError:
                pass
            time.sleep(0.25)
        log_file = logs / f"{what}.log"
        tail = log_file.read_text(errors="replace")[-3000:] if log_file.exists() else ""
        raise ControlPlaneError(f"{what} did not become ready in {timeout:.0f}s; log tail:\n{tail}")

    @staticmethod
    def _etcd_healthy(etcd_url: str) -> bool:
        with urllib.request.urlopen(f"{etcd_url}/health", timeout=2) as response:
            return bool(json.loads(response.read()).get("health") == "true")

    def _readyz_ok(self, state: ControlPlaneState) -> bool:
        code, body = self._api_get(state, "/readyz")
        return code == 200 and body.strip() == "ok"

    @staticmethod
    def _controller_manager_started(logs: Path) -> bool:
        text = (logs / "kube-controller-manager.log").read_text(errors="replace")
        return 'controller="garbagecollector"' in text

    def _apiserver_args(self, pki: Path, etcd_url: str, port: int) -> list[str]:
        return [
            f"--etcd-servers={etcd_url}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'client-ca.crt'}",
            # Without a request-header CA the controller manager logs an error every few
            # seconds; no front proxy ever uses it here.
            f"--requestheader-client-ca-file={pki / 'client-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--secure-port={port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            # The lane's real node: reached at its InternalIP (no DNS for node names).
            f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--authorization-mode=RBAC",
            # No token controller for pods; admission of ServiceAccount would demand one.
            "--disable-admission-plugins=ServiceAccount",
            # Namespace-wide node selectors and tolerations: the lane sends the pods of
            # some namespaces to its KWOK node (cluster.lane.KWOK_NAMESPACE_ANNOTATIONS).
            "--enable-admission-plugins=PodNodeSelector,PodTolerationRestriction",
            f"--service-account-issuer=https://127.0.0.1:{port}/",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            # An audit trail of every write, so tests can count the operator's requests on the
            # server side (the zero-writes guarantee) instead of trusting the client.
            f"--audit-policy-file={pki.parent / 'audit-policy.yaml'}",
            f"--audit-log-path={pki.parent / 'logs' / 'audit.log'}",
            "--audit-log-maxsize=200",
            "--audit-log-maxbackup=1",
            "--v=1",
        ]

    def _write_audit_policy(self, path: Path) -> None:
        verbs = ["create", "update", "patch", "delete", "deletecollection"]
        skip: list[dict[str, object]] = []
        if self.audit_reads:
            verbs += ["get", "list"]
            skip = [{"level": "None", "users": ["system:apiserver"]}]
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [*skip, {"level": "Metadata", "verbs": verbs}, {"level": "None"}],
        }
        path.write_text(yaml.safe_dump(policy))

    @staticmethod
    def _write_pki(pki: Path) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        serving_ca = new_ca("kfserving-local-serving-ca")
        client_ca = new_ca("kfserving-local-client-ca")
        serving = issue_serving_cert(
            serving_ca,
            "kube-apiserver",
            dns_names=("localhost", "kubernetes", "kubernetes.default",
                       "kubernetes.default.svc"),
            ip_addresses=("127.0.0.1", "10.0.0.1"),
        )
        admin = issue_client_cert(client_ca, "admin", ("system:masters",))
        # How the API server authenticates to a kubelet (logs, exec, port-forward).
        kubelet_client = issue_client_cert(client_ca, "kube-apiserver-kubelet-client", ())
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        files: dict[str, bytes] = {
            "serving-ca.crt": serving_ca.cert_pem,
            "client-ca.crt": client_ca.cert_pem,
            "client-ca.key": client_ca.key_pem,
            "apiserver.crt": serving.cert_pem,
            "apiserver.key": serving.key_pem,
            "admin.crt": admin.cert_pem,
            "admin.key": admin.key_pem,
            "kubelet-client.crt": kubelet_client.cert_pem,
            "kubelet-client.key": kubelet_client.key_pem,
            "sa.key": sa_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            ),
            "sa.pub": sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        }
        for name, content in files.items():
            path = pki / name
            path.write_bytes(content)
            path.chmod(0o600)

    @staticmethod
    def _write_kubeconfig(path: Path, server: str, pki: Path) -> None:
        import base64

        def b64(name: str) -> str:
            return base64.b64encode((pki / name).read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{
                "name": "kfserving-local",
                "cluster": {"server": server, "certificate-authority-data": b64("serving-ca.crt")},
            }],
            "users": [{
                "name": "admin",
                "user": {
                    "client-certificate-data": b64("admin.crt"),
                    "client-key-data": b64("admin.key"),
                },
            }],
            "contexts": [{
                "name": "kfserving-local",
                "context": {"cluster": "kfserving-local", "user": "admin"},
            }],
            "current-context": "kfserving-local",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)


def _stop_together(processes: list[tuple[str, int]], grace: float = 15.0) -> list[str]:
    """SIGTERM every process group that is still alive, wait up to ``grace`` seconds for all
    of them, SIGKILL what is left; return what was stopped."""
    alive = [(name, pid) for name, pid in processes if process_alive(pid, name)]
    stopped = []
    for name, pid in alive:
        try:
            os.killpg(pid, signal.SIGTERM)
            stopped.append(f"{name} (pid {pid})")
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + grace
    while any(process_alive(pid, name) for name, pid in alive) and time.monotonic() < deadline:
        time.sleep(0.1)
    for name, pid in alive:
        if process_alive(pid, name):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    for _, pid in processes:
        _reap(pid)
        _wait_gone(pid)
    return stopped


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Wait until the pid has left the process table (init reaps orphans a little later)."""
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def _reap(pid: int) -> None:
    """Collect a child we started in this process so it leaves no zombie behind."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
