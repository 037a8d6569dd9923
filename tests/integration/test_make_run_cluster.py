"""``make run`` never touches a cluster it did not start, unless the user names it.

The test cluster plays the user's unrelated cluster: ``KUBECONFIG`` points at it with a user
of its own, and the apiserver's audit log shows whether ``make run`` wrote anything there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from tests.support.cluster import Cluster, wait_for
from tests.support.operator import audit_writes

BYSTANDER = "make-run-bystander"


def _bystander_kubeconfig(cluster: Cluster, tmp_path: Path) -> str:
    return cluster.user_kubeconfig(BYSTANDER, ("system:masters",),
                                   tmp_path / "bystander.kubeconfig")


def _audit_log(cluster: Cluster) -> Path:
    if cluster.local_state is None:
        pytest.skip("needs the local control plane's audit log")
    return Path(cluster.local_state.state_dir) / "logs" / "audit.log"


def _bystander_writes(audit: Path, offset: int) -> list[str]:
    return [f"{event.get('verb')} {event.get('requestURI')}"
            for event in audit_writes(audit, offset)
            if event.get("user", {}).get("username") == BYSTANDER]


def _make_run_env(kubeconfig: str, state_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "KUBECONFIG": kubeconfig, "KFSERVING_CLUSTER_DIR": str(state_dir),
           "PYTHONUNBUFFERED": "1", **extra}
    for name in ("CLUSTER", "KFSERVING_TEST_KUBECONFIG"):
        if name not in extra:
            env.pop(name, None)
    return env


def test_make_run_ignores_a_kubeconfig_it_was_not_told_to_use(cluster: Cluster,
                                                                tmp_path: Path) -> None:
    audit = _audit_log(cluster)
    offset = audit.stat().st_size
    state_dir = tmp_path / "make-run-cluster"
    # The stand-in lane keeps this test to a plain control plane; which one does not matter.
    env = _make_run_env(_bystander_kubeconfig(cluster, tmp_path), state_dir,
                        KNATIVE="stand-in")
    process = subprocess.Popen([sys.executable, "-m", "kfserving_operator.devrun"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env)
    lines: list[str] = []
    stdout = process.stdout
    assert stdout is not None

    def read() -> None:
        for line in iter(stdout.readline, ""):
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: process.poll() is not None
                 or any("starting the operator" in line for line in lines),
                 timeout=300, message="make run to start the operator")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        subprocess.run([sys.executable, "-m", "kfserving_operator", "cluster", "down",
                        "--state-dir", str(state_dir)], capture_output=True, timeout=120,
                       env=env)
        reader.join(timeout=10)
    output = "".join(lines)
    assert "ignoring KUBECONFIG" in output, output
    assert "starting the operator" in output, output
    assert _bystander_writes(audit, offset) == [], output


def test_make_run_refuses_an_impersonating_kubeconfig(cluster: Cluster,
                                                      tmp_path: Path) -> None:
    audit = _audit_log(cluster)
    offset = audit.stat().st_size
    config = yaml.safe_load(Path(_bystander_kubeconfig(cluster, tmp_path)).read_text())
    config["users"][0]["user"]["as"] = "someone-else"
    impersonating = tmp_path / "impersonating.kubeconfig"
    impersonating.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "kfserving_operator.devrun"], capture_output=True, text=True,
        timeout=120, env=_make_run_env(str(impersonating), tmp_path / "unused",
                                       CLUSTER="external"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "impersonates (as)" in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert _bystander_writes(audit, offset) == []
