"""Operator replicas as processes: several operators against one cluster, as a Deployment runs.

Each replica authenticates as its own user (``kfserving-operator-<name>``), so the apiserver's
audit log tells whose request each write was. They run in ``cluster`` webhook mode with a
shared mounted certificate (as cert-manager would mount it into every pod) and register the
URL of a :class:`~tests.support.balancer.LoopbackBalancer` in front of them instead of a
Service, which loopback has no proxy for.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfserving_operator.cluster.localplane import free_port
from kfserving_operator.pki import issue_serving_cert, new_ca
from kfserving_operator.webhooks.certificates import write_pair
from tests.support.cluster import Cluster, wait_for

USER_PREFIX = "kfserving-operator-"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def loopback_cert_dir(directory: Path) -> Path:
    """A CA and a serving certificate for 127.0.0.1, laid out as cert-manager mounts them."""
    ca = new_ca("kfserving-test-webhook-ca")
    pair = issue_serving_cert(ca, "kfserving-webhook", dns_names=("localhost",),
                              ip_addresses=("127.0.0.1",))
    write_pair(directory, pair, ca.cert_pem)
    return directory


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with _DIRECT.open(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return 0, ""


@dataclass
class Replica:
    """One operator process."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    webhook_port: int
    health_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def user(self) -> str:
        return USER_PREFIX + self.name

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            env=self.env)

    def ready(self) -> bool:
        return http_get(self.health_port, "/readyz")[0] == 200

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(lambda: self.ready() or not self.running(), timeout=timeout,
                 message=f"replica {self.name} to be ready")
        if not self.running():
            raise RuntimeError(f"replica {self.name} exited:\n{self.log()[-4000:]}")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send_term(self) -> None:
        """SIGTERM, as the kubelet stops a pod."""
        if self.running():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float = 60) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def terminate(self, timeout: float = 60) -> None:
        """SIGTERM and wait for the exit."""
        self.send_term()
        self.wait_exit(timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, or a node that vanished. Nothing is released."""
        if self.running():
            assert self.process is not None
            self.process.kill()
            self.process.wait()

    def metrics(self) -> str:
        code, body = http_get(self.health_port, "/metrics")
        assert code == 200, code
        return body

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class ReplicaSet:
    """Replicas that share a namespace, a Lease, a certificate and a webhook URL."""

    cluster: Cluster
    tmp_dir: Path
    # The URL to register (a balancer), with a mounted certificate shared by the replicas;
    # None: the Service reference and the self-managed certificate Secret, as in a cluster.
    webhook_url: str | None
    namespace: str = "kfserving-system"
    lease_args: tuple[str, ...] = ()
    drain_seconds: float = 5.0
    replicas: dict[str, Replica] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cert_dir = loopback_cert_dir(self.tmp_dir / "certs") if self.webhook_url else None
        self.cluster.kubectl("create", "namespace", self.namespace, check=False)

    def new(self, name: str, *extra_args: str) -> Replica:
        kubeconfig = self.cluster.user_kubeconfig(USER_PREFIX + name, ("system:masters",),
                                                  self.tmp_dir / f"{name}.kubeconfig")
        webhook_port, health_port = free_port(), free_port()
        command = [sys.executable, "-m", "kfserving_operator", "run",
                   "--namespace", self.namespace, "--webhooks", "cluster",
                   "--webhook-host", "127.0.0.1", "--webhook-port", str(webhook_port),
                   "--health-port", str(health_port),
                   "--shutdown-drain-seconds", str(self.drain_seconds), *self.lease_args,
                   *extra_args]
        if self.webhook_url:
            command += ["--webhook-url", self.webhook_url, "--cert-dir", str(self.cert_dir)]
        env = {**os.environ, "KUBECONFIG": kubeconfig, "PYTHONUNBUFFERED": "1",
               "POD_NAME": name}
        env.pop("KFSERVING_TEST_KUBECONFIG", None)
        replica = Replica(name, command, env, self.tmp_dir / f"replica-{name}.log",
                          webhook_port, health_port)
        self.replicas[name] = replica
        return replica

    def holder(self) -> str | None:
        """The replica name holding the Lease (identities are ``<POD_NAME>_<uuid>``)."""
        out = self.cluster.kubectl("get", "lease", "kfserving-controller-manager-leader",
                                   "-n", self.namespace, "-o", "json", check=False)
        if not out:
            return None
        holder = json.loads(out).get("spec", {}).get("holderIdentity") or ""
        return holder.split("_", 1)[0] or None

    def lease(self) -> dict[str, Any]:
        return self.cluster.get_json("lease", "kfserving-controller-manager-leader", "-n",
                                     self.namespace)

    def stop_all(self) -> None:
        for replica in self.replicas.values():
            replica.terminate(timeout=30)


def writes_by_user(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_user: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_user.setdefault(event.get("user", {}).get("username", ""), []).append(event)
    return by_user


def describe(event: dict[str, Any]) -> str:
    ref = event.get("objectRef", {})
    sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
    return (f"{event.get('verb')} {ref.get('resource')}{sub} "
            f"{ref.get('namespace', '')}/{ref.get('name', '')} -> "
            f"{event.get('responseStatus', {}).get('code')}")


