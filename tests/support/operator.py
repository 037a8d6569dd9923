"""Run the real operator process against the test cluster, as ``make run`` does.

The operator runs as a subprocess (``python -m kfserving_operator run --webhooks local``),
serving its webhooks on loopback and registering them with a ``url`` clientConfig. On a local
control plane it authenticates as its own user, ``kfserving-operator``, so the apiserver's
audit log can tell its requests apart from the test's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfserving_operator.cluster.localplane import free_port
from tests.support.cluster import Cluster, wait_for
from tests.support.metrics import Samples, parse, total, value
from tests.support.replicas import http_get

OPERATOR_USER = "kfserving-operator"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
READ_VERBS = frozenset({"get", "list"})
# What the operator logs once it is ready: its webhook configurations are registered.
REGISTERED_LINE = b"webhooks registered"


@dataclass
class OperatorProcess:
    """A running operator and where to find its traces."""

    process: subprocess.Popen[bytes]
    log_path: Path
    namespace: str
    webhook_port: int
    health_port: int
    audit_log: Path | None
    command: list[str]
    env: dict[str, str]
    cluster: Cluster
    mode: str = "local"

    def stop(self) -> None:
        """Stop gracefully (SIGINT), as a rolling restart or Ctrl-C would."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def start(self) -> None:
        """Start (again), appending to the same log, and wait for the webhooks."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                        env=self.env)
        log.close()
        def registered() -> bool:
            # This process's own registration: a configuration left by an earlier process
            # (killed, or in cluster mode, which keeps it) must not count.
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                if REGISTERED_LINE not in handle.read():
                    return False
            return _webhooks_registered(self.cluster, self.webhook_port, self.mode)

        if self.cluster.prefix:
            # Inside the lane's network namespace: its probe port is out of the test's reach.
            wait_for(lambda: self.process.poll() is not None or registered(),
                     timeout=60, message="operator webhooks to register")
        else:
            # Ready means: cache primed, webhooks serving and registered.
            wait_for(lambda: self.process.poll() is not None
                     or (registered() and self.ready()),
                     timeout=60, message="the operator to be ready")
        if self.process.poll() is not None:
            raise RuntimeError(f"operator exited early:\n{self.log()[-4000:]}")
        assert _webhooks_registered(self.cluster, self.webhook_port, self.mode)
        time.sleep(1.0)  # the apiserver picks up new webhook configurations asynchronously

    def ready(self) -> bool:
        """The operator's own readiness probe answers 200."""
        try:
            with _DIRECT.open(f"http://127.0.0.1:{self.health_port}/readyz",
                              timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def restart(self) -> None:
        self.stop()
        self.start()

    def metrics(self) -> Samples | None:
        """The operator's metrics, or None when it does not answer (dead, stopped, stuck)."""
        if self.process.poll() is not None:
            return None
        code, text = http_get(self.health_port, "/metrics")
        return parse(text) if code == 200 else None

    def log_offset(self) -> int:
        """A bookmark in the operator's log, for :meth:`wait_reconciled`."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def wait_reconciled(self, *keys: str, since: int, trained_models: bool = False,
                        timeout: float = 30) -> None:
        """Proof of work, before a test counts zero writes.

        Waits until this operator has logged a finished reconcile of every InferenceService
        key (``namespace/name``) after the log offset ``since`` (with ``trained_models``, a
        reconcile of the TrainedModel controller for those parents), and then until its
        /metrics show nothing queued and the same reconcile count twice in a row. A dead or
        stuck operator never gets there: a zero counted afterwards is a zero the operator
        earned, not one a stopped process hands out.
        """
        def logged() -> bool:
            if self.process.poll() is not None:
                return False
            with self.log_path.open("rb") as handle:
                handle.seek(since)
                text = handle.read().decode(errors="replace")
            return all(f"reconcile {_log_key(key, trained_models)}: " in text for key in keys)

        wait_for(logged, timeout=timeout, message=f"the operator to reconcile {', '.join(keys)}")
        counts: list[float] = []

        def idle() -> bool:
            samples = self.metrics()
            if samples is None:
                counts.clear()
                return False
            count = total(samples, "kfserving_reconcile_total")
            quiet = bool(counts) and counts[-1] == count
            counts.append(count)
            return quiet and value(samples, "kfserving_workqueue_depth") == 0

        wait_for(idle, timeout=timeout, interval=0.5, message="the operator's queue to settle")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def audit_offset(self) -> int:
        """A bookmark in the audit log; count writes after it with :meth:`writes_since`."""
        if self.audit_log is None or not self.audit_log.exists():
            return 0
        return self.audit_log.stat().st_size

    def writes_since(self, offset: int, namespace: str | None = None) -> list[dict[str, Any]]:
        """Write requests the operator's user made after ``offset`` (server-side truth).

        With ``namespace``, only requests for objects in that namespace count (other tests'
        namespaces may still be terminating, and the operator's failing retries there are
        none of this test's business).
        """
        return self._requests_since(offset, WRITE_VERBS, namespace)

    def reads_since(self, offset: int, namespace: str | None = None) -> list[dict[str, Any]]:
        """GETs and LISTs (not watches) of the operator's user after ``offset``; needs a plane
        started with ``audit_reads`` (the project's policy logs writes only). With
        ``namespace``, reads in that namespace or across all of them."""
        return [event for event in self._requests_since(offset, READ_VERBS)
                if namespace is None
                or event.get("objectRef", {}).get("namespace") in (namespace, None)]

    def _requests_since(self, offset: int, verbs: frozenset[str],
                        namespace: str | None = None) -> list[dict[str, Any]]:
        if self.audit_log is None:
            raise RuntimeError("no audit log: not running on the local control plane")
        return [event for event in audit_events(self.audit_log, offset, verbs)
                if event.get("user", {}).get("username") == OPERATOR_USER
                and (namespace is None
                     or event.get("objectRef", {}).get("namespace") == namespace)]


def _log_key(key: str, trained_models: bool) -> str:
    """How the work queue names a key in its log lines: ``ns/name`` for InferenceServices,
    the key tuple for the TrainedModel controller (keyed by the parent)."""
    if not trained_models:
        return key
    namespace, name = key.split("/", 1)
    return repr((namespace, name))


def audit_writes(audit_log: Path, offset: int) -> list[dict[str, Any]]:
    """Completed write requests in the audit log after ``offset``, by anyone."""
    return audit_events(audit_log, offset, WRITE_VERBS)


def audit_events(audit_log: Path, offset: int, verbs: frozenset[str]) -> list[dict[str, Any]]:
    """Completed requests with one of ``verbs`` in the audit log after ``offset``, by anyone."""
    with audit_log.open("rb") as handle:
        handle.seek(offset)
        lines = handle.read().decode(errors="replace").splitlines()
    writes = []
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("verb") in verbs and event.get("stage") == "ResponseComplete":
            writes.append(event)
    return writes


def _webhooks_registered(cluster: Cluster, port: int, mode: str = "local") -> bool:
    out = cluster.kubectl("get", "mutatingwebhookconfigurations", "-o", "json", check=False)
    if not out:
        return False
    for item in json.loads(out).get("items", []):
        for hook in item.get("webhooks", []):
            client = hook.get("clientConfig", {})
            if mode == "local" and f":{port}/" in client.get("url", ""):
                return True
            if mode == "cluster" and client.get("service") and client.get("caBundle"):
                return True
    return False


@contextmanager
def run_operator(cluster: Cluster, tmp_dir: Path, *, namespace: str = "kfserving-system",
                 extra_env: dict[str, str] | None = None,
                 webhook_mode: str = "local", kubeconfig: str | None = None,
                 extra_args: tuple[str, ...] = ()) -> Iterator[OperatorProcess]:
    """Start the operator, wait until its webhooks answer, stop it cleanly afterwards.

    By default it runs as its own all-powerful user; ``kubeconfig`` gives it another identity
    (a ServiceAccount token bound to the chart's RBAC, say).
    """
    if kubeconfig is None:
        kubeconfig = cluster.user_kubeconfig(OPERATOR_USER, ("system:masters",),
                                             tmp_dir / "operator.kubeconfig")
    cluster.kubectl("create", "namespace", namespace, check=False)
    port, health_port = free_port(), free_port()
    log_path = tmp_dir / f"operator-{port}.log"
    env = {**os.environ, "KUBECONFIG": kubeconfig, "PYTHONUNBUFFERED": "1",
           **(extra_env or {})}
    env.pop("KFSERVING_TEST_KUBECONFIG", None)
    # On the Knative lane the operator runs inside the lane's network namespace (nsenter
    # execs it in place, so signals reach it directly).
    command = [*cluster.prefix, sys.executable, "-m", "kfserving_operator", "run",
               "--namespace", namespace,
               "--webhooks", webhook_mode, "--webhook-port", str(port),
               "--health-port", str(health_port), "--verbose",
               *extra_args]
    if webhook_mode == "cluster":
        # Out of a pod, cluster mode still listens on loopback for the test to reach.
        command += ["--webhook-host", "127.0.0.1"]
    audit = None
    if cluster.local_state is not None:
        audit = Path(cluster.local_state.state_dir) / "logs" / "audit.log"
    log_path.write_bytes(b"")
    running = OperatorProcess(subprocess.Popen(["true"]), log_path, namespace, port,
                              health_port, audit, command, env, cluster, webhook_mode)
    running.process.wait()
    try:
        running.start()
        yield running
    finally:
        running.stop()
        print(f"\n--- operator log tail ({log_path}) ---\n{running.log()[-3000:]}")


@contextmanager
def operator_unless_external(cluster: Cluster, tmp_dir: Path) -> Iterator[
        OperatorProcess | None]:
    """The operator for a test session, or None when ``KFSERVING_TEST_OPERATOR=external``
    says it already runs in the cluster (installed by Helm on kind, say)."""
    if os.environ.get("KFSERVING_TEST_OPERATOR") == "external":
        yield None
        return
    with run_operator(cluster, tmp_dir) as running:
        yield running
