"""User scenarios on real Knative Serving, driven only through kubectl and the CLI.

The cluster is the local Knative lane (see ``conftest.py``) or a kind cluster with Knative
and Istio: Knative's own controllers create Configurations, Revisions, Routes and pods, and
write every ksvc status these tests read. Nothing here patches a status.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfserving_operator.operator.runtime import LEASE_NAME
from kfserving_operator.reconcile.common import is_subset
from tests.support.cluster import Cluster, KubectlError, wait_for
from tests.support.isvc import KSVC, condition, get_or_none, names, wait_ready
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.usefixtures("operator")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml"))
CANARY_STEPS = sorted((ROOT / "examples" / "canary").glob("step-*.yaml"))
# How long the idle test watches the audit log.
IDLE_SECONDS = 20
REVISION = re.compile(r"^(?P<config>.+)-(?P<n>\d{5})$")


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def _render(path: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "kfserving_operator", "render", "-f", str(path)],
        capture_output=True, text=True, check=True,
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _components(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    components: dict[str, dict[str, Any]] = obj.get("status", {}).get("components", {})
    return components


def _assert_real_revisions(cluster: Cluster, namespace: str, obj: dict[str, Any]) -> None:
    """Every component's latest ready revision is a Revision Knative made, with a pod."""
    revisions = names(cluster, "revisions.serving.knative.dev", namespace)
    pods = cluster.get_json("pods", "-n", namespace)["items"]
    for component, status in _components(obj).items():
        revision = status.get("latestReadyRevision", "")
        assert REVISION.match(revision), f"{component}: {revision!r} is not a revision name"
        assert revision in revisions, f"{component}: {revision} is not a live Revision"
        assert any(p["metadata"].get("labels", {}).get("serving.knative.dev/revision")
                   == revision for p in pods), f"no pod for revision {revision}"


def test_sklearn_quickstart(cluster: Cluster, namespace: str,
                            report: Any) -> None:
    """The README flow: apply the example, Ready with a real revision in seconds."""
    example = ROOT / "examples" / "sklearn.yaml"
    name = _load(example)["metadata"]["name"]
    started = time.monotonic()
    cluster.kubectl("apply", "-n", namespace, "-f", str(example))
    obj = wait_ready(cluster, namespace, name)
    elapsed = time.monotonic() - started
    table = cluster.kubectl("get", "isvc", name, "-n", namespace)
    report(f"Ready in {elapsed:.1f}s:\n{table}")
    assert f"http://{name}.{namespace}.example.com" in table
    assert _components(obj)["predictor"]["latestReadyRevision"] == \
        f"{name}-predictor-default-00001"
    _assert_real_revisions(cluster, namespace, obj)
    ksvc = cluster.get_json(KSVC, f"{name}-predictor-default", "-n", namespace)
    # Knative's webhook defaulted it, and Knative's controller resolved the traffic.
    assert ksvc["metadata"]["annotations"].get("serving.knative.dev/creator")
    assert ksvc["status"]["traffic"][0]["revisionName"] == f"{name}-predictor-default-00001"


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_becomes_ready(cluster: Cluster, namespace: str, example: Path) -> None:
    name = _load(example)["metadata"]["name"]
    cluster.kubectl("apply", "-n", namespace, "-f", str(example))
    obj = wait_ready(cluster, namespace, name)
    _assert_real_revisions(cluster, namespace, obj)
    assert obj["status"].get("url", "").startswith(f"http://{name}.{namespace}.")


def test_render_previews_what_the_cluster_gets(cluster: Cluster, namespace: str) -> None:
    """`kfserving-operator render` shows the same Knative Service the operator applies."""
    example = ROOT / "examples" / "transformer.yaml"
    rendered = {(d["kind"], d["metadata"]["name"]): d for d in _render(example)}
    cluster.kubectl("apply", "-n", namespace, "-f", str(example))
    for (kind, name), doc in rendered.items():
        if kind != "Service" or doc["apiVersion"] != "serving.knative.dev/v1":
            continue
        live = wait_for(lambda n=name: get_or_none(cluster, KSVC, n, "-n", namespace),
                        message=f"ksvc {name}")
        # Everything rendered is live; Knative's webhook adds its defaults on top.
        expected = _in_namespace(doc, namespace)
        assert is_subset(expected["spec"]["template"]["spec"]["containers"],
                         live["spec"]["template"]["spec"]["containers"])
        assert is_subset(expected["spec"]["traffic"], live["spec"]["traffic"])


def _in_namespace(doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    """Rendered objects use the file's namespace (default); re-home their host names."""
    text = json.dumps(doc)
    source = doc["metadata"].get("namespace", "default")
    return dict(json.loads(text.replace(f".{source}", f".{namespace}")))


def test_invalid_model_is_refused_with_the_field_named(cluster: Cluster,
                                                        namespace: str) -> None:
    manifest = {
        "apiVersion": "serving.kubeflow.org/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "bad"},
        "spec": {"predictor": {"sklearn": {"storageUri": "ftp://models/iris"},
                               "canaryTrafficPercent": 50}},
    }
    with pytest.raises(KubectlError) as refused:
        cluster.apply_yaml(manifest, namespace)
    assert "spec.predictor.sklearn.storageUri" in refused.value.stderr
    assert "gs://" in refused.value.stderr


# (prev %, latest %, revision rolled out before, latest ready revision) after each step, as
# examples/canary/README.md shows them.
CANARY_EXPECTED = [
    (None, 100, None, "00001"),
    (90, 10, "00001", "00002"),
    (None, 100, None, "00002"),
    (80, 20, "00002", "00003"),
    (100, 0, "00002", "00003"),
]


def _traffic_row(obj: dict[str, Any]) -> tuple[int | None, int | None, str | None, str | None]:
    traffic = _components(obj)["predictor"].get("traffic", [])
    prev = next((t for t in traffic if t.get("tag") == "prev"), None)
    latest = next((t for t in traffic if t.get("latestRevision")), None)
    return (prev["percent"] if prev else None, latest["percent"] if latest else None,
            prev["revisionName"][-5:] if prev else None,
            latest["revisionName"][-5:] if latest else None)


def test_canary_rollout_as_documented(cluster: Cluster, namespace: str, report: Any) -> None:
    """examples/canary/: each step applied in order gives the split the walkthrough shows."""
    assert len(CANARY_STEPS) == len(CANARY_EXPECTED)
    name = _load(CANARY_STEPS[0])["metadata"]["name"]
    for step, expected in zip(CANARY_STEPS, CANARY_EXPECTED, strict=True):
        cluster.kubectl("apply", "-n", namespace, "-f", str(step))

        def settled(want: tuple[Any, ...] = expected) -> dict[str, Any] | None:
            obj = wait_ready(cluster, namespace, name)
            return obj if _traffic_row(obj) == want else None

        try:
            obj = wait_for(settled, timeout=60, message=f"{step.name} split {expected}")
        finally:
            report(f"{step.name}:\n{cluster.kubectl('get', 'isvc', name, '-n', namespace)}")
        _assert_real_revisions(cluster, namespace, obj)
        ksvc = cluster.get_json(KSVC, f"{name}-predictor-default", "-n", namespace)
        # Knative itself routes what the InferenceService reports.
        live = sorted((t.get("tag"), t["percent"]) for t in ksvc["status"]["traffic"])
        reported = sorted((t.get("tag"), t["percent"])
                          for t in _components(obj)["predictor"]["traffic"])
        assert live == reported
    rollout = obj["status"].get("annotations", {}).get("serving.kubeflow.org/predictor-rollout")
    assert rollout == "RolledBack"


def test_removing_the_transformer_deletes_its_knative_objects(cluster: Cluster,
                                                             namespace: str) -> None:
    example = ROOT / "examples" / "transformer.yaml"
    manifest = _load(example)
    name = manifest["metadata"]["name"]
    cluster.kubectl("apply", "-n", namespace, "-f", str(example))
    obj = wait_ready(cluster, namespace, name)
    assert "transformer" in _components(obj)
    transformer = f"{name}-transformer-default"
    assert transformer in names(cluster, "configurations.serving.knative.dev", namespace)

    del manifest["spec"]["transformer"]
    cluster.apply_yaml(manifest, namespace)
    obj = wait_ready(cluster, namespace, name)
    assert "transformer" not in _components(obj)
    assert condition(obj, "TransformerReady") == {}
    wait_for(lambda: transformer not in names(cluster, KSVC, namespace)
             and transformer not in names(cluster, "configurations.serving.knative.dev",
                                          namespace)
             and not any(r.startswith(transformer)
                         for r in names(cluster, "revisions.serving.knative.dev", namespace))
             and not any(p.startswith(transformer) for p in names(cluster, "pods", namespace)),
             timeout=60, message="the transformer's Knative objects and pods to go")


def test_deletion_cascades_through_knative(cluster: Cluster, namespace: str) -> None:
    """Deleting the InferenceService removes ksvc, Configuration, Revision, Route and pods."""
    example = ROOT / "examples" / "sklearn.yaml"
    name = _load(example)["metadata"]["name"]
    cluster.kubectl("apply", "-n", namespace, "-f", str(example))
    wait_ready(cluster, namespace, name)
    resources = (KSVC, "configurations.serving.knative.dev", "revisions.serving.knative.dev",
                 "routes.serving.knative.dev", "pods")
    before = {resource: names(cluster, resource, namespace) for resource in resources}
    assert all(before.values()), before

    cluster.kubectl("delete", "isvc", name, "-n", namespace, "--wait=false")
    wait_for(lambda: not any(names(cluster, resource, namespace) for resource in resources),
             timeout=90, message="every Knative object and pod of the deleted isvc to go")


def test_operator_makes_no_writes_at_idle(cluster: Cluster, namespace: str,
                                          operator: OperatorProcess | None,
                                          report: Any) -> None:
    """With Knative's controllers busy around it, the operator itself writes nothing.

    Nothing but its leader-election heartbeat: renewing its own Lease every retry period is
    what tells other replicas it is alive (Knative's controllers do the same), and it is
    counted apart, as updates of that one Lease.
    """
    if operator is None or operator.audit_log is None:
        pytest.skip("counting requests needs the local control plane's audit log")
    for example in ("transformer.yaml", "canary.yaml"):
        cluster.kubectl("apply", "-n", namespace, "-f", str(ROOT / "examples" / example))
    for example in ("transformer.yaml", "canary.yaml"):
        wait_ready(cluster, namespace, _load(ROOT / "examples" / example)["metadata"]["name"])
    # Idle means idle: earlier tests' namespaces are still being torn down (the garbage
    # collector removing children the operator then finds missing), so wait them out.
    wait_for(lambda: not _terminating_namespaces(cluster), timeout=180,
             message="earlier tests' namespaces to go")
    time.sleep(3)  # let the last status writes and their watch events settle

    offset = operator.audit_offset()
    time.sleep(IDLE_SECONDS)
    all_writes = operator.writes_since(offset)
    renewals = [w for w in all_writes if w.get("objectRef", {}).get("resource") == "leases"]
    writes = [w for w in all_writes if w not in renewals]
    everyone = _writers_since(operator.audit_log, offset)
    report(f"writes in {IDLE_SECONDS} s at idle: operator {len(writes)} (and {len(renewals)} "
           "renewals of "
           f"its leader-election Lease); all users {everyone}")
    # The operator was alive throughout: it renewed its Lease every retry period (2 s), so a
    # dead or stuck operator, which writes nothing at all, fails here rather than passing.
    assert operator.process.poll() is None, operator.log()[-2000:]
    assert len(renewals) >= IDLE_SECONDS / 2 / 2, (
        f"only {len(renewals)} Lease renewals in {IDLE_SECONDS} s: is the operator alive?")
    assert {(w["verb"], w["objectRef"].get("name")) for w in renewals} == {
        ("update", LEASE_NAME)}
    assert writes == [], yaml.safe_dump([(w["verb"], w["requestURI"]) for w in writes])


def _terminating_namespaces(cluster: Cluster) -> list[str]:
    listed = cluster.get_json("namespaces")
    return [item["metadata"]["name"] for item in listed["items"]
            if item.get("status", {}).get("phase") == "Terminating"]


def _writers_since(audit_log: Path, offset: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    with audit_log.open("rb") as handle:
        handle.seek(offset)
        for line in handle.read().decode(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("stage") == "ResponseComplete":
                user = event.get("user", {}).get("username", "?")
                counts[user] = counts.get(user, 0) + 1
    return counts
