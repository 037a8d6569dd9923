"""A local run (``make run``) starts safely or stops with one clear line.

- the webhook port is any free one unless given;
- a port that is taken, or webhooks that another operator serves (one installed in the
  cluster, or another local run), stop the start-up with one line and exit code 1, and leave
  the other operator's registration alone;
- a leftover registration of a local run that was killed is taken over;
- readiness is reported only after the webhooks are registered.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kfserving_operator.api.constants import WEBHOOK_SERVICE_NAME
from kfserving_operator.cluster.localplane import free_port
from kfserving_operator.webhooks import registration
from tests.support.cluster import Cluster
from tests.support.operator import OperatorProcess
from tests.support.replicas import http_get

HOOK_KINDS = ("mutatingwebhookconfigurations", "validatingwebhookconfigurations")


def _command(namespace: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "kfserving_operator", "run", "--namespace", namespace,
            "--webhooks", "local", *extra]


def _env(cluster: Cluster) -> dict[str, str]:
    env = {**os.environ, "KUBECONFIG": cluster.kubeconfig, "PYTHONUNBUFFERED": "1"}
    env.pop("KFSERVING_TEST_KUBECONFIG", None)
    return env


def _run_to_exit(cluster: Cluster, command: list[str]) -> tuple[int, list[str]]:
    result = subprocess.run(command, env=_env(cluster), capture_output=True, text=True,
                            timeout=60)
    return result.returncode, (result.stdout + result.stderr).splitlines()


def _assert_one_clear_line(lines: list[str], *expected: str) -> None:
    fatal = [line for line in lines if "cannot start:" in line]
    assert len(fatal) == 1, lines
    for text in expected:
        assert text in fatal[0], fatal[0]
    assert not any("Traceback" in line for line in lines), "\n".join(lines)


def _hooks(cluster: Cluster) -> list[dict[str, Any]]:
    found = []
    for kind in HOOK_KINDS:
        out = cluster.kubectl("get", kind, registration.CONFIGURATION_NAME, "-o", "json",
                              check=False)
        if out:
            found.append(json.loads(out))
    return found


def _urls(cluster: Cluster) -> set[str]:
    return {endpoint.url or f"service:{endpoint.service}"
            for config in _hooks(cluster) for endpoint in registration.endpoints(config)}


def test_taken_port_stops_start_up_with_one_line(cluster: Cluster, namespace: str) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        started = time.monotonic()
        code, lines = _run_to_exit(cluster, _command(namespace, "--webhook-port", str(port)))
    assert code == 1
    assert time.monotonic() - started < 30  # no retry loop
    _assert_one_clear_line(lines, f"127.0.0.1:{port}", "--webhook-port")


def test_another_local_operator_is_left_alone(cluster: Cluster, namespace: str,
                                              operator: OperatorProcess | None) -> None:
    if operator is None or operator.mode != "local":
        pytest.skip("needs the session's local operator")
    before = _urls(cluster)
    assert any(f":{operator.webhook_port}/" in url for url in before)
    code, lines = _run_to_exit(cluster, _command(namespace))
    assert code == 1
    _assert_one_clear_line(lines, "another local operator serves the webhooks",
                           f"127.0.0.1:{operator.webhook_port}")
    assert _urls(cluster) == before


def test_installed_operator_is_left_alone_and_a_dead_local_one_is_replaced(
        bare_cluster: Cluster, tmp_path: Path) -> None:
    cluster = bare_cluster
    namespace = "kfserving-system"
    cluster.kubectl("create", "namespace", namespace)

    def service(path: str) -> dict[str, Any]:
        return registration.service_client_config(WEBHOOK_SERVICE_NAME, namespace, path,
                                                  b"ca")

    # As the Helm chart installs them: a Service reference.
    installed = [registration.mutating_configuration(service, namespace),
                 registration.validating_configuration(service)]
    for config in installed:
        cluster.apply_yaml(config)
    code, lines = _run_to_exit(cluster, _command(namespace))
    assert code == 1
    _assert_one_clear_line(lines, "already sends admission to Service "
                                  f"{namespace}/{WEBHOOK_SERVICE_NAME}")
    assert _urls(cluster) == {f"service:{namespace}/{WEBHOOK_SERVICE_NAME}"}

    # A killed local run's leftover (nothing listens on its port any more) is replaced, and
    # the new run is ready only once its own registration is in place.
    for kind in HOOK_KINDS:
        cluster.kubectl("delete", kind, registration.CONFIGURATION_NAME)
    dead = free_port()

    def stale(path: str) -> dict[str, Any]:
        return registration.url_client_config(f"https://127.0.0.1:{dead}", path, b"ca")

    for config in (registration.mutating_configuration(stale, namespace),
                   registration.validating_configuration(stale)):
        cluster.apply_yaml(config)
    health = free_port()
    log = (tmp_path / "operator.log").open("wb")
    process = subprocess.Popen(_command(namespace, "--health-port", str(health)),
                               env=_env(cluster), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while http_get(health, "/readyz")[0] != 200:
            assert process.poll() is None, (tmp_path / "operator.log").read_text()
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.05)
        urls = _urls(cluster)  # read right after the first ready answer
        assert urls and not any(f":{dead}/" in url for url in urls), urls
        ports = {url.split(":")[2].split("/")[0] for url in urls}
        assert len(ports) == 1 and ports != {"9443"}  # one free port, not a fixed one
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    # Stopped: its loopback registration is gone, so nothing waits on a dead port.
    assert _hooks(cluster) == []
