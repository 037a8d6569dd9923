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

from kfserving_operator.api.config import CONFIGMAP_NAME
from kfserving_operator.cluster import netns
from kfserving_operator.cluster.lane import KWOK_NAMESPACE_ANNOTATIONS
from kfserving_operator.cluster.localconfig import local_operator_config
from tests.conftest import ROOT, _to_terminal
from tests.support.cluster import (
    Cluster,
    fresh_namespace,
    install_crds,
    start_cluster,
    start_knative_lane,
)
from tests.support.operator import OperatorProcess, operator_unless_external


# Package scope: the lane stops when the e2e tier is done, not at the end of the whole
# session; and `operator` is overridden too, because a session fixture shared with the
# integration tier would keep running against whichever cluster it met first.
@pytest.fixture(scope="package")
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
        # The images the lane's real node has (the shipped defaults name KServe's).
        running.kubectl("create", "namespace", "kfserving-system", check=False)
        running.apply_yaml({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP_NAME, "namespace": "kfserving-system"},
            "data": local_operator_config().to_configmap_data()})
        version = json.loads(running.kubectl("version", "-o", "json"))["serverVersion"]
        # Shown even without -s: the CI log names what the e2e tier really ran against.
        _to_terminal(request.config,
                     f"e2e cluster: Knative Serving {running.knative_version} (real, "
                     f"knative.dev/serving) on kube-apiserver {version['gitVersion']} at "
                     f"{running.local_state.apiserver_url if running.local_state else '?'}, "
                     "in an isolated network namespace")
        yield running


@pytest.fixture(scope="package")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        OperatorProcess | None]:
    """The operator, inside the lane's network namespace, as its own user."""
    with operator_unless_external(cluster, tmp_path_factory.mktemp("operator-e2e")) as running:
        yield running


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace whose pods run on the lane's KWOK node.

    The control-plane scenarios (status, canary bookkeeping, KWOK-faked failures) use
    upstream's example images and gs:// models, which nothing here can pull; on KWOK their
    pods turn Running all the same. On an external cluster the namespace is plain.
    """
    with fresh_namespace(
            cluster, KWOK_NAMESPACE_ANNOTATIONS if cluster.local_state is not None else {}
    ) as name:
        yield name


@pytest.fixture
def node_namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace whose pods run real containers on the lane's real node."""
    with fresh_namespace(cluster) as name:
        yield name
