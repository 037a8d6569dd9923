"""Canary rollout end to end: spec traffic, status bookkeeping and printer columns per step.

A test helper stands in for Knative: it mints revisions ``<ksvc>-0000N`` for each new template
and resolves the Knative Service's ``spec.traffic`` into ``status.traffic``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.cluster import Cluster, wait_for
from tests.support.isvc import condition, isvc_status, wait_condition
from tests.support.knative import KnativeStandIn

pytestmark = pytest.mark.usefixtures("operator")

COLUMNS = ("URL", "READY", "PREV", "LATEST", "PREVROLLEDOUTREVISION", "LATESTREADYREVISION")


def isvc_with(component: str, uri: str, canary: int | None = None) -> dict[str, Any]:
    """An InferenceService whose canary-carrying component is ``component``."""
    spec: dict[str, Any] = {"predictor": {"sklearn": {"storageUri": "gs://models/iris"}}}
    if component == "predictor":
        spec["predictor"]["sklearn"]["storageUri"] = uri
        target = spec["predictor"]
    else:
        spec["transformer"] = {"containers": [{
            "image": "example/transformer:1",
            "env": [{"name": "STORAGE_URI", "value": uri}],
        }]}
        target = spec["transformer"]
    if canary is not None:
        target["canaryTrafficPercent"] = canary
    return {"apiVersion": "serving.kubeflow.org/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "iris"}, "spec": spec}


def printer_columns(cluster: Cluster, namespace: str) -> dict[str, str]:
    lines = cluster.kubectl("get", "isvc", "iris", "-n", namespace).splitlines()
    header, row = lines[0], lines[1]
    starts = [header.index(name) for name in ("NAME", *COLUMNS, "AGE")]
    values = {}
    for i, name in enumerate(("NAME", *COLUMNS)):
        values[name] = row[starts[i]:starts[i + 1]].strip()
    return values


class Lifecycle:
    """Drives one component through the rollout steps, playing Knative in between."""

    def __init__(self, cluster: Cluster, namespace: str, component: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.component = component
        self.ksvc_name = f"iris-{component}-default"
        self.knative = KnativeStandIn(cluster, namespace)

    def rev(self, n: int) -> str:
        return f"{self.ksvc_name}-{n:05d}"

    def apply(self, uri: str, canary: int | None = None) -> None:
        self.cluster.apply_yaml(isvc_with(self.component, uri, canary), self.namespace)

    def ksvc_traffic(self) -> list[dict[str, Any]]:
        traffic: list[dict[str, Any]] = self.knative.ksvc(self.ksvc_name)["spec"]["traffic"]
        return traffic

    def wait_ksvc_traffic(self, expected: list[dict[str, Any]]) -> None:
        wait_for(lambda: self.ksvc_traffic() == expected, timeout=30,
                 message=f"ksvc traffic {expected}; last {self.ksvc_traffic()}")

    def wait_uri(self, uri: str) -> None:
        wait_for(lambda: uri in str(self.knative.ksvc(self.ksvc_name)["spec"]["template"]),
                 message=f"ksvc template with {uri}")

    def component_status(self) -> dict[str, Any]:
        components = isvc_status(self.cluster, self.namespace, "iris").get("components", {})
        result: dict[str, Any] = components.get(self.component, {})
        return result

    def wait_status(self, **expected: Any) -> dict[str, Any]:
        def matches() -> dict[str, Any] | None:
            status = self.component_status()
            ok = all(status.get(k) == v for k, v in expected.items())
            return status if ok else None

        result: dict[str, Any] = wait_for(
            matches, timeout=30,
            message=f"{self.component} status {expected}; last {self.component_status()}")
        return result

    def assert_columns(self, prev: str, latest: str, prev_rev: str, latest_rev: str) -> None:
        """The printer columns show the predictor's split (as in KFServing)."""
        if self.component != "predictor":
            prev, latest, prev_rev, latest_rev = "", "100", "", "iris-predictor-default-00001"
        expected = {"PREV": prev, "LATEST": latest, "PREVROLLEDOUTREVISION": prev_rev,
                    "LATESTREADYREVISION": latest_rev}

        def shown() -> bool:
            columns = printer_columns(self.cluster, self.namespace)
            return all(columns[k] == v for k, v in expected.items())

        wait_for(shown, timeout=15,
                 message=f"columns {expected}; got {printer_columns(self.cluster, self.namespace)}")

    def ready_others(self) -> None:
        if self.component != "predictor":
            self.knative.wait_for_ksvc("iris-predictor-default")
            self.knative.observe("iris-predictor-default", ready=True)


def traffic_by_revision(status: dict[str, Any]) -> dict[str, int]:
    split: dict[str, int] = {}
    for entry in status["traffic"]:
        assert "latestRevision" in entry and "percent" in entry, entry
        split[entry["revisionName"]] = split.get(entry["revisionName"], 0) + entry["percent"]
    return {k: v for k, v in split.items() if v}


@pytest.mark.parametrize("component", ["predictor", "transformer"])
def test_canary_lifecycle(cluster: Cluster, namespace: str, component: str) -> None:
    life = Lifecycle(cluster, namespace, component)

    # 1. Create, then Ready: 100% to rev1, recorded as rolled out.
    life.apply("gs://models/v1")
    life.knative.wait_for_ksvc(life.ksvc_name)
    life.ready_others()
    life.knative.observe(life.ksvc_name, ready=True)
    wait_condition(cluster, namespace, "iris", "Ready", "True")
    status = life.wait_status(latestRolledoutRevision=life.rev(1))
    assert traffic_by_revision(status) == {life.rev(1): 100}
    assert "previousRolledoutRevision" not in status
    life.assert_columns("", "100", "", life.rev(1))

    # 2. New model with p=10: spec traffic [latest 10, prev rev1 90].
    life.apply("gs://models/v2", canary=10)
    life.wait_ksvc_traffic([
        {"latestRevision": True, "percent": 10},
        {"latestRevision": False, "percent": 90, "revisionName": life.rev(1), "tag": "prev"},
    ])
    life.wait_uri("gs://models/v2")
    # Before rev2 is ready all traffic stays on rev1.
    life.knative.observe(life.ksvc_name, ready=None)
    status = life.wait_status(latestCreatedRevision=life.rev(2))
    assert traffic_by_revision(status) == {life.rev(1): 100}
    assert status["latestRolledoutRevision"] == life.rev(1)
    # Knative resolves "latest" to the latest *ready* revision, still rev1: both shares on it.
    life.assert_columns("90", "10", life.rev(1), life.rev(1))
    # Once rev2 is ready, 90/10.
    life.knative.observe(life.ksvc_name, ready=True)
    status = life.wait_status(latestReadyRevision=life.rev(2))
    assert traffic_by_revision(status) == {life.rev(1): 90, life.rev(2): 10}
    assert status["latestRolledoutRevision"] == life.rev(1)
    life.assert_columns("90", "10", life.rev(1), life.rev(2))

    # 3. Promote by removing p: 100% to rev2; previous rev1, latest rev2.
    life.apply("gs://models/v2")
    life.wait_ksvc_traffic([{"latestRevision": True, "percent": 100}])
    life.knative.observe(life.ksvc_name, ready=True)
    status = life.wait_status(latestRolledoutRevision=life.rev(2),
                              previousRolledoutRevision=life.rev(1))
    assert traffic_by_revision(status) == {life.rev(2): 100}
    life.assert_columns("", "100", "", life.rev(2))

    # 4. A second canary with rev3 at p=20: prev is rev2, never rev1, at every step.
    life.apply("gs://models/v3", canary=20)
    expected_split = [
        {"latestRevision": True, "percent": 20},
        {"latestRevision": False, "percent": 80, "revisionName": life.rev(2), "tag": "prev"},
    ]
    life.wait_ksvc_traffic(expected_split)
    life.wait_uri("gs://models/v3")
    life.knative.observe(life.ksvc_name, ready=None)
    status = life.wait_status(latestCreatedRevision=life.rev(3))
    assert life.rev(1) not in traffic_by_revision(status)
    assert life.ksvc_traffic() == expected_split
    life.knative.observe(life.ksvc_name, ready=True)
    status = life.wait_status(latestReadyRevision=life.rev(3))
    assert traffic_by_revision(status) == {life.rev(2): 80, life.rev(3): 20}
    assert life.ksvc_traffic() == expected_split
    life.assert_columns("80", "20", life.rev(2), life.rev(3))

    # 5. Roll back with p=0: 100% to rev2, recorded as a rollback.
    life.apply("gs://models/v3", canary=0)
    life.wait_ksvc_traffic([
        {"latestRevision": True, "percent": 0},
        {"latestRevision": False, "percent": 100, "revisionName": life.rev(2), "tag": "prev"},
    ])
    life.knative.observe(life.ksvc_name, ready=True)
    status = life.wait_status(latestRolledoutRevision=life.rev(2))
    assert traffic_by_revision(status) == {life.rev(2): 100}
    annotations = isvc_status(cluster, namespace, "iris").get("annotations", {})
    assert annotations.get(f"serving.kubeflow.org/{component}-rollout") == "RolledBack"
    life.assert_columns("100", "0", life.rev(2), life.rev(3))
    events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector",
                             "involvedObject.name=iris")
    assert "RolledBack" in events

    # 6. A canary whose revision fails: traffic stays on the previous revision, and the
    #    conditions carry Knative's failure message.
    life.apply("gs://models/broken", canary=30)
    life.wait_uri("gs://models/broken")
    life.knative.observe(life.ksvc_name, ready=False,
                         failure_message="container exited with code 1: model not found")
    ready_type = f"{component.capitalize()}Ready"
    status = wait_condition(cluster, namespace, "iris", ready_type, "False")
    assert "model not found" in condition(status, ready_type)["message"]
    assert "model not found" in condition(status, "Ready")["message"]
    assert condition(status, "Ready")["message"].endswith(
        f"the previous revisions keep serving ({life.rev(3)} 30%, {life.rev(2)} 70%), "
        f"{life.rev(4)} gets none")
    component_status = status["components"][component]
    # latestRevision resolves to the latest *ready* revision (rev3, at 30%); rev2 keeps 70%.
    assert life.rev(4) not in traffic_by_revision(component_status)
    assert traffic_by_revision(component_status) == {life.rev(2): 70, life.rev(3): 30}
    assert component_status["latestRolledoutRevision"] == life.rev(2)
    life.assert_columns("70", "30", life.rev(2), life.rev(3))


def test_tag_routing_exposes_per_revision_urls(cluster: Cluster, namespace: str) -> None:
    life = Lifecycle(cluster, namespace, "predictor")
    manifest = isvc_with("predictor", "gs://models/v1")
    manifest["metadata"]["annotations"] = {"serving.kubeflow.org/enable-tag-routing": "true"}
    cluster.apply_yaml(manifest, namespace)
    life.knative.wait_for_ksvc(life.ksvc_name)
    life.knative.observe(life.ksvc_name, ready=True)
    life.wait_status(latestRolledoutRevision=life.rev(1))
    manifest = isvc_with("predictor", "gs://models/v2", canary=25)
    manifest["metadata"]["annotations"] = {"serving.kubeflow.org/enable-tag-routing": "true"}
    cluster.apply_yaml(manifest, namespace)
    life.wait_ksvc_traffic([
        {"latestRevision": True, "percent": 25, "tag": "latest"},
        {"latestRevision": False, "percent": 75, "revisionName": life.rev(1), "tag": "prev"},
    ])
    life.wait_uri("gs://models/v2")
    life.knative.observe(life.ksvc_name, ready=True)
    status = life.wait_status(latestReadyRevision=life.rev(2))
    urls = {entry["tag"]: entry["url"] for entry in status["traffic"]}
    assert urls == {
        "latest": f"http://latest-iris-predictor-default.{namespace}.example.com",
        "prev": f"http://prev-iris-predictor-default.{namespace}.example.com",
    }
