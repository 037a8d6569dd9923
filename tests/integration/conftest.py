"""Fixtures shared by the integration tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, bare_local_cluster


@pytest.fixture
def bare_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A private control plane without Knative and Istio (local runs only)."""
    if os.environ.get("KFSERVING_TEST_KUBECONFIG"):
        pytest.skip("needs a control plane of its own")
    with bare_local_cluster(tmp_path / "plane") as cluster:
        yield cluster
