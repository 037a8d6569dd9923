"""The e2e tier runs on real Knative Serving: the local Knative lane.

The session starts the lane (``cluster up --knative``) in a state directory of its own,
``.cache/cluster-e2e`` (``KFSERVING_E2E_CLUSTER_DIR`` moves it), with no Knative stand-in CRD:
Knative's own controllers make Knative Services Ready. kubectl and the operator run inside
the lane's network namespace. With ``KFSERVING_TEST_KUBECONFIG`` (a kind cluster with Knative
and Istio) that cluster is used instead, as before.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kfserving_operator.cluster import netns
from tests.conftest import ROOT, _to_terminal, operator_for
from tests.support.cluster import Cluster, install_crds, start_cluster, start_knative_lane
from tests.support.operator import OperatorProcess


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """Real Knative: the local lane, or the external cluster the environment names."""
    if os.environ.get("KFSERVING_TEST_KUBECONFIG"):
        with start_cluster() as running:
            install_crds(running, stand_ins=False)
            yield running
        return
    why_not = netns.unavailable_reason()
    if why_not:
        pytest.skip(f"the Knative lane cannot run here: {why_not}")
    state_dir = Path(os.environ.get("KFSERVING_E2E_CLUSTER_DIR", ROOT / ".cache" / "cluster-e2e"))
    with start_knative_lane(state_dir) as running:
        install_crds(running, stand_ins=False)
        version = json.loads(running.kubectl("version", "-o", "json"))["serverVersion"]
        # Shown even without -s: the CI log names what the e2e tier really ran against.
        _to_terminal(request.config,
                     f"e2e cluster: Knative Serving {running.knative_version} (real, "
                     f"knative.dev/serving) on kube-apiserver {version['gitVersion']} at "
                     f"{running.local_state.apiserver_url if running.local_state else '?'}, "
                     "in an isolated network namespace")
        yield running


@pytest.fixture(scope="session")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        OperatorProcess | None]:
    """The operator on the lane (not the integration tier's, when both run in one session)."""
    yield from operator_for(cluster, tmp_path_factory)
