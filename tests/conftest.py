"""Shared pytest wiring: a real cluster for integration and e2e tests.

The session uses the cluster named by ``KFSERVING_TEST_KUBECONFIG`` when it is set (CI on
kind does this). Otherwise it starts the project's loopback control plane (etcd,
kube-apiserver, kube-controller-manager) in its own state directory, so a ``make run``
cluster is never touched, and stops it at the end of the session.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, fresh_namespace, install_crds, start_cluster
from tests.support.operator import OperatorProcess, operator_unless_external

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path)
        if f"{os.sep}integration{os.sep}" in path:
            item.add_marker(pytest.mark.integration)
        if f"{os.sep}e2e{os.sep}" in path:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The cluster under test, with our CRDs and the Knative/Istio stand-in CRDs installed."""
    with start_cluster() as running:
        install_crds(running)
        version = json.loads(running.kubectl("version", "-o", "json"))["serverVersion"]
        where = running.local_state.apiserver_url if running.local_state else "external"
        # Shown even without -s: proof in the CI log that a real apiserver answered.
        _to_terminal(request.config,
                     f"cluster under test: kube-apiserver {version['gitVersion']} at {where}")
        yield running


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting for it to go)."""
    with fresh_namespace(cluster) as name:
        yield name


@pytest.fixture(scope="session")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        OperatorProcess | None]:
    """The operator process, one per session; tests isolate themselves by namespace.

    With ``KFSERVING_TEST_OPERATOR=external`` the operator is assumed to run in the cluster
    already (installed by Helm on kind, say) and ``None`` is yielded.
    """
    with operator_unless_external(cluster, tmp_path_factory.mktemp("operator")) as running:
        yield running


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Write a line to the test log even when output is captured (evidence in CI logs)."""
    return lambda line: _to_terminal(request.config, f"[{request.node.name}] {line}")


def _to_terminal(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capture is None:
        reporter.write_line(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)
