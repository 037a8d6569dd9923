"""Small leaks: key material left on disk, and a restart that still wrote something.

Before the fix every start left a new temporary directory holding the webhook private key,
even after a graceful stop; and every restart sent one ``create configmaps`` (answered 409)
per multi-model InferenceService, breaking "a restart writes nothing".
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from tests.support.cluster import Cluster, wait_for
from tests.support.isvc import get_or_none
from tests.support.operator import OperatorProcess


@pytest.fixture
def running(operator: OperatorProcess | None) -> OperatorProcess:
    if operator is None:
        pytest.skip("restarts the operator process this session started")
    return operator


def _key_dirs(tmp: Path) -> list[Path]:
    return sorted(p for p in tmp.iterdir() if p.name.startswith("kfserving-"))


def test_no_key_material_is_left_after_a_graceful_stop(running: OperatorProcess,
                                                       tmp_path: Path) -> None:
    running.env["TMPDIR"] = str(tmp_path)
    try:
        running.restart()
        held = _key_dirs(tmp_path)
        assert held and all((d / "tls.key").exists() for d in held)  # in use while running
        running.stop()
        assert _key_dirs(tmp_path) == []
        # A directory left by a killed operator is removed by the next start.
        running.start()
        running.process.kill()
        running.process.wait()
        assert len(_key_dirs(tmp_path)) == 1
        running.start()
        wait_for(lambda: len(_key_dirs(tmp_path)) == 1, message="the stale directory removed")
    finally:
        running.env.pop("TMPDIR", None)
        running.restart()


def test_restart_sends_no_create_for_existing_model_config_maps(
        cluster: Cluster, namespace: str, running: OperatorProcess) -> None:
    if running.audit_log is None:
        pytest.skip("counts requests in the local control plane's audit log")
    items = [{"apiVersion": "serving.kubeflow.org/v1beta1", "kind": "InferenceService",
              "metadata": {"name": f"mms{i}", "namespace": namespace},
              "spec": {"predictor": {"triton": {}}}} for i in range(3)]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(items))
    for i in range(3):
        wait_for(lambda i=i: get_or_none(cluster, "configmap", f"modelconfig-mms{i}-0", "-n",
                                         namespace), message="model config map")
    time.sleep(2)
    offset, since = running.audit_offset(), running.log_offset()
    running.restart()
    # The proof that the new process did its start's work on every one of them.
    keys = [f"{namespace}/mms{i}" for i in range(3)]
    running.wait_reconciled(*keys, since=since)
    running.wait_reconciled(*keys, since=since, trained_models=True)
    writes = [(w["verb"], w["requestURI"]) for w in running.writes_since(offset, namespace)]
    assert writes == [], yaml.safe_dump(writes)
