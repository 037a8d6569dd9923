"""Multi-model serving and v1alpha2 on real Knative Serving, through kubectl only.

Knative's own controllers make the predictors Ready (the lane of ``conftest.py``); nothing
here patches a status. The SDK's TrainedModel calls, which need a model data path this lane
does not run, are exercised on the loopback plane (tests/integration/test_multi_model_sdk.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support.cluster import Cluster, wait_for
from tests.support.isvc import wait_ready

pytestmark = pytest.mark.usefixtures("operator")

ROOT = Path(__file__).resolve().parents[2]
MULTI_MODEL = ROOT / "examples" / "multi-model"
V1ALPHA2 = sorted((ROOT / "examples" / "v1alpha2").glob("*.yaml"))


def test_multi_model_example(cluster: Cluster, namespace: str) -> None:
    """kubectl apply -f examples/multi-model/: the server Ready with a real revision, both
    models Ready and in models.json; deleting the InferenceService deletes them."""
    cluster.kubectl("apply", "-n", namespace, "-f", str(MULTI_MODEL))
    wait_ready(cluster, namespace, "sklearn-mms")
    for model in ("iris-a", "iris-b"):
        cluster.kubectl("wait", "--for=condition=Ready", f"tm/{model}", "-n", namespace,
                        "--timeout=120s")
    configmap = cluster.get_json("configmap", "modelconfig-sklearn-mms-0", "-n", namespace)
    assert [m["modelName"] for m in json.loads(configmap["data"]["models.json"])] == [
        "iris-a", "iris-b"]
    assert f"http://sklearn-mms.{namespace}." in cluster.kubectl("get", "tm", "-n", namespace)
    cluster.kubectl("delete", "isvc", "sklearn-mms", "-n", namespace)
    wait_for(lambda: not json.loads(cluster.kubectl("get", "tm", "-n", namespace, "-o",
                                                    "json"))["items"],
             timeout=120, message="TrainedModels deleted with their InferenceService")


@pytest.mark.parametrize("example", V1ALPHA2, ids=[p.stem for p in V1ALPHA2])
def test_v1alpha2_example_turns_ready(cluster: Cluster, namespace: str, example: Path) -> None:
    name = yaml.safe_load(example.read_text())["metadata"]["name"]
    cluster.kubectl("apply", "-n", namespace, "-f", str(example))
    wait_ready(cluster, namespace, name)
    header, row = cluster.kubectl("get", "inferenceservices.v1alpha2.serving.kubeflow.org",
                                  name, "-n", namespace).splitlines()[:2]
    assert header.split()[:4] == ["NAME", "URL", "READY", "DEFAULT"]
    assert row.split()[2:4] == ["True", "100"]
