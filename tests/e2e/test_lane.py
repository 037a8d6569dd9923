"""The lane itself, as a user of `kfserving-operator cluster` sees it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kfserving_operator.cluster.lane import LANE_TOOLS, NODE_NAME
from kfserving_operator.cluster.localplane import TOOLS
from tests.support.cluster import Cluster


@pytest.fixture
def lane(cluster: Cluster) -> Cluster:
    if cluster.local_state is None or cluster.local_state.netns_pid is None:
        pytest.skip("about the local Knative lane")
    return cluster


def _cli(lane: Cluster, action: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert lane.local_state is not None
    return subprocess.run([sys.executable, "-m", "kfserving_operator", "cluster", action,
                           "--state-dir", lane.local_state.state_dir, *args],
                          capture_output=True, text=True, timeout=60)


def test_status_reports_every_process_of_the_lane(lane: Cluster) -> None:
    result = _cli(lane, "status")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in (*TOOLS, *LANE_TOOLS):
        if name != "kubectl":
            assert f"\n{name}: pid " in result.stdout and "NOT running" not in result.stdout
    assert "network namespace (only lo): holder pid" in result.stdout
    assert "knative serving: v0.42.2" in result.stdout


def test_exec_runs_kubectl_inside_the_lane(lane: Cluster) -> None:
    result = _cli(lane, "exec", "--", "kubectl", "get", "node", NODE_NAME,
                  "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status} {.spec.taints}")
    assert result.returncode == 0, result.stderr
    # KWOK reports the Node Ready and the node-lifecycle controller lifted its taint.
    assert result.stdout.strip() == "True"


def test_the_lane_has_no_route_out(lane: Cluster) -> None:
    result = _cli(lane, "exec", "--", sys.executable, "-c",
                  "from kfserving_operator.cluster import netns; "
                  "print(netns.interfaces(), netns.default_route())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['lo'] None"


def test_knative_writes_under_its_own_identity(lane: Cluster) -> None:
    """The audit log tells Knative's, KWOK's and the scheduler's writes apart."""
    assert lane.local_state is not None
    audit = (Path(lane.local_state.state_dir) / "logs" / "audit.log").read_text()
    for user in ('"username":"knative-serving"', '"username":"kwok"',
                 '"username":"system:kube-scheduler"'):
        assert user in audit
