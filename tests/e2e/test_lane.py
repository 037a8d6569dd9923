"""The lane itself, as a user of `kfserving-operator cluster` sees it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kfserving_operator.cluster.lane import LANE_TOOLS, NODE_NAME
from kfserving_operator.cluster.localplane import TOOLS
from kfserving_operator.cluster.node import BRIDGE
from kfserving_operator.cluster.node import NODE_NAME as REAL_NODE
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
    template = ("jsonpath={range .items[*]}{.metadata.name} "
                "{.status.conditions[?(@.type=='Ready')].status} {.spec.taints}{'\\n'}{end}")
    result = _cli(lane, "exec", "--", "kubectl", "get", "nodes", "-o", template)
    assert result.returncode == 0, result.stderr
    nodes = {line.split(" ")[0]: [*line.split(" "), ""][1:3] for line in
             result.stdout.strip().splitlines()}
    # Both nodes are Ready (the node-lifecycle controller lifted the not-ready taints); the
    # real one takes every pod, KWOK's only those that tolerate its taint.
    assert nodes[REAL_NODE] == ["True", ""], nodes
    assert nodes[NODE_NAME][0] == "True", nodes
    assert "kwok.x-k8s.io/node" in nodes[NODE_NAME][1], nodes


def test_the_lane_has_no_route_out(lane: Cluster) -> None:
    result = _cli(lane, "exec", "--", sys.executable, "-c",
                  "from kfserving_operator.cluster import netns; "
                  "print(' '.join(netns.interfaces()), netns.default_route())")
    assert result.returncode == 0, result.stderr
    *interfaces, route = result.stdout.split()
    # Loopback, the pods' bridge and its veth ends; no default route, so nothing leaves.
    assert route == "None"
    assert set(interfaces) >= {"lo", BRIDGE}
    assert all(name in ("lo", BRIDGE) or name.startswith("veth") for name in interfaces), (
        interfaces)


def test_knative_writes_under_its_own_identity(lane: Cluster) -> None:
    """The audit log tells Knative's, KWOK's, the scheduler's and the node's writes apart."""
    assert lane.local_state is not None
    audit = (Path(lane.local_state.state_dir) / "logs" / "audit.log").read_text()
    for user in ('"username":"knative-serving"', '"username":"kwok"',
                 '"username":"system:kube-scheduler"', f'"username":"system:node:{REAL_NODE}"'):
        assert user in audit
