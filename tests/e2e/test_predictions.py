"""Predictions end to end, on the lane's real node: what a user does after ``Ready``.

Each test applies an InferenceService from ``examples/local`` (or a variant of one) in a
namespace whose pods run real containers: the storage initializer downloads the model from
the lane's MinIO with the credentials the operator's pod webhook injects, the model server
loads it, Knative's queue-proxy fronts it. Requests go through ``kfserving-operator cluster
predict``, as the README tells a user: Traefik's Knative ingress, Knative's traffic split,
the activator when the revision has scaled to zero. Only the local lane has the model
store and the node images; on an external cluster these tests are skipped.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfserving_operator.cluster.modelstore import ModelStoreAccess, credential_objects
from tests.conftest import ROOT
from tests.support.cluster import Cluster, wait_for
from tests.support.isvc import get_or_none, wait_not_ready, wait_ready
from tests.support.operator import OperatorProcess

# Real pods on a two-core machine: more than the suite's default 300 s per test.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

EXAMPLES = ROOT / "examples" / "local"
IRIS = EXAMPLES / "iris-input.json"
# Real pods: image unpacked, model downloaded, Python server started. Minutes on a busy
# two-core machine, seconds on a quiet one.
READY_TIMEOUT = 300.0


@pytest.fixture
def store(cluster: Cluster, node_namespace: str,
          operator: OperatorProcess | None) -> Iterator[str]:
    """A namespace on the real node with the model store's Secret and ServiceAccount."""
    if cluster.local_state is None:
        pytest.skip("the model store and node images exist only on the local lane")
    access = ModelStoreAccess.load(Path(cluster.local_state.state_dir))
    assert access is not None, "the lane started without its model store"
    for obj in credential_objects(access, node_namespace):
        cluster.apply_yaml(obj)
    yield node_namespace


def example(name: str, **changes: Any) -> dict[str, Any]:
    """An example from examples/local, with top-level spec changes merged in."""
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    for component, patch in changes.items():
        loaded["spec"].setdefault(component, {}).update(patch)
    return loaded


# Traefik marks a Knative ingress ready once it has read it and applies the new routes a
# moment later, so just after Ready (or a new traffic split) a request may still meet the
# old routes: a 404 for a host it does not route yet. A request is retried on that alone,
# for this long.
ROUTE_SETTLE_SECONDS = 30.0


def predict(cluster: Cluster, name: str, namespace: str, data: Path, *,
            v2: bool = False) -> Any:
    """``kfserving-operator cluster predict``, as a user runs it; the parsed answer."""
    assert cluster.local_state is not None
    command = [sys.executable, "-m", "kfserving_operator", "cluster", "predict", name,
               "-n", namespace, "--data", str(data),
               "--state-dir", cluster.local_state.state_dir, *(["--v2"] if v2 else [])]
    deadline = time.monotonic() + ROUTE_SETTLE_SECONDS
    while True:
        result = subprocess.run(command, capture_output=True, text=True, timeout=180,
                                check=False)
        not_routed_yet = result.returncode != 0 and "HTTP 404" in result.stderr
        if not not_routed_yet or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert result.returncode == 0, f"cluster predict failed: {result.stderr}{result.stdout}"
    return json.loads(result.stdout)


# Many requests from one process inside the lane's namespace, through the same route and
# ingress as `cluster predict` (one CLI call per request would take minutes).
_MANY_REQUESTS = """
import collections, json, sys
from pathlib import Path
from kfserving_operator.cluster import predict
from kfserving_operator.cluster.common import ControlPlaneState
from kfserving_operator.cluster.localplane import find_tool
state_dir, name, namespace, data, count = sys.argv[1:]
state = ControlPlaneState.load(Path(state_dir))
route = predict.resolve_route(find_tool("kubectl"), state.kubeconfig, name, namespace)
body = predict.load_body(data)
path = predict.request_path(name, v2=False, path=None)
answers = collections.Counter()
for _ in range(int(count)):
    status, response = predict.send(state.ingress_address, route, path, body)
    answers[f"{status} {response.decode()}"] += 1
print(json.dumps(answers))
"""


def predict_many(cluster: Cluster, name: str, namespace: str, data: Path,
                 count: int) -> collections.Counter[str]:
    """``count`` v1 predictions; how often each "<status> <body>" came back."""
    assert cluster.local_state is not None
    result = subprocess.run(
        [*cluster.prefix, sys.executable, "-c", _MANY_REQUESTS,
         cluster.local_state.state_dir, name, namespace, str(data), str(count)],
        capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    return collections.Counter(json.loads(result.stdout))


def test_sklearn_v1_answers_the_iris_request(cluster: Cluster, store: str) -> None:
    cluster.apply_yaml(example("sklearn.yaml"), namespace=store)
    wait_ready(cluster, store, "sklearn-iris", timeout=READY_TIMEOUT)
    assert predict(cluster, "sklearn-iris", store, IRIS) == {"predictions": [1, 1]}


def test_sklearn_v2_answers_on_the_v2_protocol(cluster: Cluster, store: str) -> None:
    cluster.apply_yaml(example("sklearn-v2.yaml"), namespace=store)
    wait_ready(cluster, store, "sklearn-v2-iris", timeout=READY_TIMEOUT)
    answer = predict(cluster, "sklearn-v2-iris", store, EXAMPLES / "iris-input-v2.json",
                     v2=True)
    assert answer["model_name"] == "sklearn-v2-iris"
    assert answer["outputs"][0]["data"] == [1, 1]


def test_xgboost_answers_the_iris_request(cluster: Cluster, store: str) -> None:
    cluster.apply_yaml(example("xgboost.yaml"), namespace=store)
    wait_ready(cluster, store, "xgboost-iris", timeout=READY_TIMEOUT)
    assert predict(cluster, "xgboost-iris", store, IRIS) == {"predictions": [1.0, 1.0]}


def test_transformer_turns_named_features_into_a_prediction(cluster: Cluster,
                                                            store: str) -> None:
    cluster.apply_yaml(example("transformer.yaml"), namespace=store)
    wait_ready(cluster, store, "sklearn-iris-transformer", timeout=READY_TIMEOUT)
    named = EXAMPLES / "iris-input-named.json"
    # The transformer calls the predictor by name (cluster DNS, Knative's local route).
    assert predict(cluster, "sklearn-iris-transformer", store, named) == {
        "predictions": [1, 1]}


def test_canary_splits_traffic_between_two_answering_revisions(cluster: Cluster,
                                                               store: str) -> None:
    """20 % to a canary whose model always answers class 2; 300 requests see both."""
    cluster.apply_yaml(example("sklearn.yaml"), namespace=store)
    wait_ready(cluster, store, "sklearn-iris", timeout=READY_TIMEOUT)
    canary = example("sklearn.yaml", predictor={"canaryTrafficPercent": 20})
    canary["spec"]["predictor"]["sklearn"]["storageUri"] = "s3://models/sklearn/iris-constant"
    cluster.apply_yaml(canary, namespace=store)
    isvc = wait_ready(cluster, store, "sklearn-iris", timeout=READY_TIMEOUT)
    traffic = {entry.get("percent") for entry in
               isvc["status"]["components"]["predictor"].get("traffic", [])}
    assert traffic == {80, 20}, isvc["status"]["components"]["predictor"]
    stable, canary = '200 {"predictions":[1,1]}', '200 {"predictions":[2,2]}'
    # The split applies once the ingress has the new routes (see ROUTE_SETTLE_SECONDS):
    # count only from the first canary answer on.
    wait_for(lambda: canary in predict_many(cluster, "sklearn-iris", store, IRIS, 10),
             timeout=ROUTE_SETTLE_SECONDS, message="the canary's first answer")
    requests = 300
    seen = predict_many(cluster, "sklearn-iris", store, IRIS, requests)
    assert set(seen) == {stable, canary}, seen
    share = seen[canary] / requests
    # Traefik's weighted round robin is smooth, so the share is close to exact; the
    # tolerance allows for requests that land while an endpoint is being updated.
    assert abs(share - 0.20) <= 0.05, f"canary share {share:.1%} (of {requests}): {seen}"


def _pods(cluster: Cluster, namespace: str, revision: str) -> list[dict[str, Any]]:
    found = get_or_none(cluster, "pods", "-n", namespace,
                        "-l", f"serving.knative.dev/revision={revision}")
    return [pod for pod in (found or {}).get("items", [])
            if not pod["metadata"].get("deletionTimestamp")]


def test_scale_to_zero_and_the_first_request_after_it(cluster: Cluster, store: str) -> None:
    isvc = example("sklearn.yaml", predictor={"minReplicas": 0})
    # Knative's shortest stable window: idle is noticed within seconds.
    isvc["metadata"]["annotations"] = {"autoscaling.knative.dev/window": "6s"}
    cluster.apply_yaml(isvc, namespace=store)
    ready = wait_ready(cluster, store, "sklearn-iris", timeout=READY_TIMEOUT)
    revision = ready["status"]["components"]["predictor"]["latestReadyRevision"]
    wait_for(lambda: not _pods(cluster, store, revision), timeout=180,
             message=f"revision {revision} scaled to zero")
    started = time.monotonic()
    assert predict(cluster, "sklearn-iris", store, IRIS) == {"predictions": [1, 1]}
    cold_start = time.monotonic() - started
    assert _pods(cluster, store, revision), "the request was answered without a pod"
    print(f"first request after scale to zero answered in {cold_start:.1f}s")


def test_missing_model_fails_in_the_storage_initializer(cluster: Cluster, store: str) -> None:
    missing = example("sklearn.yaml")
    missing["spec"]["predictor"]["sklearn"]["storageUri"] = "s3://models/sklearn/no-such-model"
    cluster.apply_yaml(missing, namespace=store)
    ready = wait_not_ready(cluster, store, "sklearn-iris", "storage-initializer",
                           "exit code 1", timeout=READY_TIMEOUT)
    assert "no-such-model" in ready["message"], ready


def test_model_server_that_crashes_at_start_reports_its_exit_code(cluster: Cluster,
                                                                  store: str) -> None:
    empty = example("sklearn.yaml")
    empty["spec"]["predictor"]["sklearn"]["storageUri"] = "s3://models/sklearn/empty"
    cluster.apply_yaml(empty, namespace=store)
    ready = wait_not_ready(cluster, store, "sklearn-iris", "exit code 1",
                           timeout=READY_TIMEOUT)
    assert "crash" in ready["message"].lower() or "CrashLoop" in ready.get("reason", ""), ready


def test_raw_deployment_answers_without_knative(cluster: Cluster, store: str) -> None:
    """Raw mode on the real node: a Deployment, Service, HPA and an Ingress that the lane's
    ingress serves; no Knative Service; the same answer."""
    cluster.apply_yaml(example("sklearn-raw.yaml"), namespace=store)
    ready = wait_ready(cluster, store, "sklearn-iris-raw", timeout=READY_TIMEOUT)
    assert ready["status"]["url"] == f"http://sklearn-iris-raw-{store}.example.com"
    name = "sklearn-iris-raw-predictor-default"
    hpa = cluster.get_json("hpa", name, "-n", store)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 2)
    assert cluster.get_json("deployment", name, "-n", store)["status"]["readyReplicas"] == 1
    assert cluster.get_json("service", name, "-n", store)["spec"]["ports"][0]["port"] == 80
    assert get_or_none(cluster, "ksvc", name, "-n", store) is None
    assert predict(cluster, "sklearn-iris-raw", store, IRIS) == {"predictions": [1, 1]}
