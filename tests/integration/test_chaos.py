"""Chaos, small enough for every test run: the operator SIGKILLed at random points of a churn,
kube-apiserver restarted, etcd restarted. Afterwards everything converges: every
InferenceService has exactly its children, owned by its current uid and carrying its latest
spec, its status observes its latest generation, and nothing is left without an owner.

These tests stop and start processes, so they run on a control plane of their own (a few
seconds to start), never on the shared one. The random points come from a seed printed in
the test log; ``KFSERVING_CHAOS_SEED`` replays one.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lightkube import Client
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from kfserving_operator.cluster.localplane import LocalControlPlane
from kfserving_operator.k8s.api import (
    CoreServiceResource,
    InferenceServiceResource,
    KnativeServiceResource,
    VirtualServiceResource,
)
from tests.support.cluster import Cluster, _kubectl_binary, install_crds, wait_for
from tests.support.operator import OperatorProcess, run_operator
from tests.support.outage import process_down

ISVC_LABEL = "serving.kubeflow.org/inferenceservice"
STORAGE_URI = "internal.serving.kubeflow.org/storage-initializer-sourceuri"
CONVERGE_SECONDS = 120.0


@pytest.fixture(scope="module")
def chaos_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[LocalControlPlane, Cluster]]:
    if os.environ.get("KFSERVING_TEST_KUBECONFIG"):
        pytest.skip("stops and starts control-plane processes: needs a plane of its own")
    plane = LocalControlPlane(tmp_path_factory.mktemp("chaos") / "plane")
    state = plane.up()
    try:
        cluster = Cluster(state.kubeconfig, _kubectl_binary(), state)
        install_crds(cluster)
        yield plane, cluster
    finally:
        plane.down()


@pytest.fixture(scope="module")
def chaos_operator(chaos_plane: tuple[LocalControlPlane, Cluster],
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    with run_operator(chaos_plane[1], tmp_path_factory.mktemp("chaos-operator")) as running:
        yield running


@pytest.fixture(scope="module")
def client(chaos_plane: tuple[LocalControlPlane, Cluster]) -> Iterator[Client]:
    kube = Client(config=KubeConfig.from_file(chaos_plane[1].kubeconfig), trust_env=False,
                  field_manager="chaos-test")
    yield kube
    kube.close()


def _seed() -> int:
    return int(os.environ.get("KFSERVING_CHAOS_SEED") or random.SystemRandom().randrange(10**6))


def isvc(name: str, namespace: str, uri: str) -> InferenceServiceResource:
    return InferenceServiceResource({
        "apiVersion": "serving.kubeflow.org/v1beta1", "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"predictor": {"sklearn": {"storageUri": uri}}}})


def retrying(action: Callable[[], Any], timeout: float = 90.0) -> Any:
    """A user's write, repeated while the webhooks or the API are briefly unreachable.

    A 404 on delete and a 409 on create mean an earlier attempt did get through."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except ApiError as exc:
            code = exc.status.code
            if code in (404, 409):
                return None
            if code not in (500, 503, 504) or time.monotonic() > deadline:
                raise
        except Exception:  # connection refused or reset while a process restarts
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def _owner_uid(obj: dict[str, Any]) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "InferenceService":
            return str(ref.get("uid"))
    return None


def converged(client: Client, namespace: str, expected: dict[str, str]) -> list[str]:
    """What still differs from the expected world (empty when converged).

    ``expected``: isvc name -> storageUri of its latest spec.
    """
    problems: list[str] = []
    isvcs = {o["metadata"]["name"]: dict(o) for o in client.list(InferenceServiceResource,
                                                                 namespace=namespace)}
    if set(isvcs) != set(expected):
        problems.append(f"isvcs {sorted(set(isvcs) ^ set(expected))[:5]} differ from expected")
    uids = {name: o["metadata"]["uid"] for name, o in isvcs.items()}
    for resource, what in ((KnativeServiceResource, "ksvc"), (CoreServiceResource, "service"),
                           (VirtualServiceResource, "vs")):
        children: dict[str, list[dict[str, Any]]] = {}
        for obj in client.list(resource, namespace=namespace, labels={ISVC_LABEL: None}):
            body = dict(obj)
            parent = body["metadata"]["labels"][ISVC_LABEL]
            if _owner_uid(body) not in uids.values() or uids.get(parent) != _owner_uid(body):
                problems.append(f"orphan {what} {body['metadata']['name']}")
                continue
            children.setdefault(parent, []).append(body)
        for name, items in children.items():
            if len(items) > 1:
                problems.append(f"duplicate {what} for {name}: {len(items)}")
        if what == "vs":
            continue  # created only once the predictor is Ready (no Knative here)
        for name, uri in expected.items():
            found = children.get(name) or []
            if not found:
                problems.append(f"missing {what} for {name}")
            elif what == "ksvc":
                annotations = (found[0]["spec"]["template"].get("metadata") or {}).get(
                    "annotations") or {}
                if annotations.get(STORAGE_URI) != uri:
                    problems.append(f"ksvc of {name} has {annotations.get(STORAGE_URI)}, "
                                    f"not {uri}")
    for name, obj in isvcs.items():
        observed = (obj.get("status") or {}).get("observedGeneration")
        if observed != obj["metadata"]["generation"]:
            problems.append(f"{name} observedGeneration {observed} != "
                            f"{obj['metadata']['generation']}")
    return problems


def wait_converged(client: Client, namespace: str, expected: dict[str, str]) -> None:
    last: list[str] = []

    def check() -> bool:
        nonlocal last
        last = converged(client, namespace, expected)
        return not last

    try:
        wait_for(check, timeout=CONVERGE_SECONDS, interval=1.0, message="convergence")
    except TimeoutError:
        raise AssertionError(f"not converged after {CONVERGE_SECONDS:.0f}s: "
                             f"{len(last)} problems, first: {last[:10]}") from None


def test_sigkill_at_random_points_during_churn(chaos_plane: tuple[LocalControlPlane, Cluster],
                                               chaos_operator: OperatorProcess,
                                               client: Client, report: Any) -> None:
    """100 InferenceServices created, changed, deleted and re-created by 8 writers while the
    operator is SIGKILLed three times at random points and started again, as a Deployment
    would: no duplicate, no orphan, nothing lost."""
    cluster = chaos_plane[1]
    seed = _seed()
    report(f"KFSERVING_CHAOS_SEED={seed}")
    rng = random.Random(seed)
    namespace = "churn"
    cluster.kubectl("create", "namespace", namespace)
    names = [f"m{i:03d}" for i in range(100)]
    # lightkube builds its msgspec type for API errors on first use; doing that from eight
    # threads at once has crashed the interpreter, so the first error happens here.
    with contextlib.suppress(ApiError):
        client.get(InferenceServiceResource, "absent", namespace=namespace)
    expected: dict[str, str] = {}
    lock = threading.Lock()

    # The churn: every model created, 60 random updates, 20 deletes, 10 of them re-created.
    # Each name's steps keep their order and belong to one of 8 writers; a writer interleaves
    # its names at random.
    per_name: dict[str, list[str]] = {name: ["create"] for name in names}
    for _ in range(60):
        per_name[rng.choice(names)].append("update")
    deleted = rng.sample(names, 20)
    for name in deleted:
        per_name[name].append("delete")
    for name in deleted[:10]:
        per_name[name] += ["create", "update"]
    lanes: list[list[tuple[str, str]]] = []
    for lane in range(8):
        queues = {name: list(per_name[name]) for name in names[lane::8]}
        steps: list[tuple[str, str]] = []
        while queues:
            name = rng.choice(sorted(queues))
            steps.append((queues[name].pop(0), name))
            if not queues[name]:
                del queues[name]
        lanes.append(steps)
    versions: dict[str, int] = {}

    def run(lane: list[tuple[str, str]]) -> None:
        # One client per writer thread: lightkube's sync client is not meant to be shared.
        client = Client(config=KubeConfig.from_file(cluster.kubeconfig), trust_env=False,
                        field_manager="chaos-test")
        try:
            _run(client, lane)
        finally:
            client.close()

    def _run(client: Client, lane: list[tuple[str, str]]) -> None:
        for action, name in lane:
            if action == "create":
                with lock:
                    versions[name] = versions.get(name, 0) + 1
                    uri = f"gs://chaos/{name}/v{versions[name]}"
                retrying(lambda n=name, u=uri: client.create(isvc(n, namespace, u)))
                with lock:
                    expected[name] = uri
            elif action == "update":
                with lock:
                    if name not in expected:
                        continue
                    versions[name] += 1
                    uri = f"gs://chaos/{name}/v{versions[name]}"
                patch = {"spec": {"predictor": {"sklearn": {"storageUri": uri}}}}
                if retrying(lambda n=name, p=patch: client.patch(
                        InferenceServiceResource, n, p, namespace=namespace,
                        patch_type=PatchType.MERGE)) is not None:
                    with lock:
                        expected[name] = uri
            else:
                with lock:
                    expected.pop(name, None)
                retrying(lambda n=name: client.delete(InferenceServiceResource, n,
                                                      namespace=namespace))
            time.sleep(rng.uniform(0, 0.05))

    kills: list[float] = []
    churn_done = threading.Event()

    def killer() -> None:
        """Three SIGKILLs at random points, each soon after the previous start."""
        started = time.monotonic()
        for _ in range(3):
            if churn_done.wait(rng.uniform(0.2, 1.5)):
                return
            chaos_operator.process.send_signal(signal.SIGKILL)
            chaos_operator.process.wait()
            kills.append(time.monotonic() - started)
            chaos_operator.start()  # at once, as a Deployment's restart would

    with concurrent.futures.ThreadPoolExecutor(9) as pool:
        kill = pool.submit(killer)
        for future in [pool.submit(run, lane) for lane in lanes]:
            future.result()
        churn_done.set()
        kill.result()
    report(f"operator SIGKILLed at {', '.join(f'{t:.1f}s' for t in kills)} of the churn; "
           f"{len(expected)} InferenceServices remain")
    assert kills, "the churn ended before the first kill"
    wait_converged(client, namespace, expected)
    assert chaos_operator.process.poll() is None
    assert "Traceback" not in chaos_operator.log()


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_control_plane_restart(component: str, chaos_plane: tuple[LocalControlPlane, Cluster],
                               chaos_operator: OperatorProcess, client: Client,
                               report: Any) -> None:
    """Changes made just before the restart, and right after it, all arrive; the operator
    keeps running and converges."""
    cluster = chaos_plane[1]
    namespace = f"restart-{component.split('-')[-1]}"
    cluster.kubectl("create", "namespace", namespace)
    expected = {f"r{i:02d}": f"gs://restart/r{i:02d}/v1" for i in range(20)}
    for name, uri in expected.items():
        retrying(lambda n=name, u=uri: client.create(isvc(n, namespace, u)))
    wait_converged(client, namespace, expected)

    for name in list(expected)[:10]:  # in flight when the process goes away
        expected[name] = f"gs://restart/{name}/v2"
        client.patch(InferenceServiceResource, name,
                     {"spec": {"predictor": {"sklearn": {"storageUri": expected[name]}}}},
                     namespace=namespace, patch_type=PatchType.MERGE)
    stopped = time.monotonic()
    with process_down(cluster, component):
        time.sleep(3.0)
    report(f"{component} was down for {time.monotonic() - stopped:.1f}s")

    for name in list(expected)[10:15]:  # made as soon as the API answers again
        expected[name] = f"gs://restart/{name}/v3"
        retrying(lambda n=name: client.patch(
            InferenceServiceResource, n,
            {"spec": {"predictor": {"sklearn": {"storageUri": expected[n]}}}},
            namespace=namespace, patch_type=PatchType.MERGE))
    expected["after"] = "gs://restart/after/v1"
    retrying(lambda: client.create(isvc("after", namespace, expected["after"])))
    wait_converged(client, namespace, expected)
    # How quietly the outage is logged is the outage tests' subject, not this one's.
    assert chaos_operator.process.poll() is None, "the operator must survive the restart"


def test_chaos_helpers_see_a_difference(chaos_plane: tuple[LocalControlPlane, Cluster],
                                        chaos_operator: OperatorProcess,
                                        client: Client) -> None:
    """The convergence check can fail: a missing model and a stale URI are reported."""
    namespace = "check"
    chaos_plane[1].kubectl("create", "namespace", namespace)
    retrying(lambda: client.create(isvc("one", namespace, "gs://check/one/v1")))
    wait_converged(client, namespace, {"one": "gs://check/one/v1"})
    problems = converged(client, namespace, {"one": "gs://check/one/v2", "two": "gs://x"})
    assert any("differ from expected" in p for p in problems)
    assert any("not gs://check/one/v2" in p for p in problems)

