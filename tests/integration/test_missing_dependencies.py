"""Knative and Istio missing: a clear condition, no crash, and recovery without a restart.

This needs a cluster where those CRDs are absent, so it starts a second loopback control
plane of its own (a few seconds) with only our CRD installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import DEV_CRDS, Cluster, wait_established, wait_for
from tests.support.isvc import condition, isvc_status, sklearn_isvc
from tests.support.knative import KnativeStandIn
from tests.support.operator import OperatorProcess, run_operator


@pytest.fixture
def bare_operator(bare_cluster: Cluster, tmp_path: Path) -> Iterator[OperatorProcess]:
    with run_operator(bare_cluster, tmp_path) as running:
        yield running


def test_missing_knative_and_istio_then_installed(bare_cluster: Cluster,
                                                 bare_operator: OperatorProcess) -> None:
    cluster = bare_cluster
    cluster.kubectl("create", "namespace", "models")
    cluster.apply_yaml(sklearn_isvc("iris"), "models")

    def not_installed() -> dict[str, object] | None:
        status = isvc_status(cluster, "models", "iris")
        ready = condition(status, "Ready")
        return status if ready.get("reason") == "KnativeServingNotInstalled" else None

    status = wait_for(not_installed, timeout=30, message="KnativeServingNotInstalled")
    ready = condition(status, "Ready")
    assert ready["status"] == "False"
    assert "Knative" in ready["message"]
    assert bare_operator.process.poll() is None, "the operator must keep running"

    for crd in sorted(DEV_CRDS.glob("*.yaml")):
        cluster.kubectl("apply", "-f", str(crd))
    wait_established(cluster, "services.serving.knative.dev")
    wait_established(cluster, "virtualservices.networking.istio.io")

    knative = KnativeStandIn(cluster, "models")
    knative.wait_for_ksvc("iris-predictor-default", timeout=60)
    knative.observe("iris-predictor-default", ready=True)
    wait_for(lambda: condition(isvc_status(cluster, "models", "iris"), "Ready").get("status")
             == "True", timeout=60, message="Ready after the CRDs were installed")
    assert bare_operator.process.poll() is None
    assert "Traceback" not in bare_operator.log()
