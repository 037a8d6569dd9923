"""The InferenceService CRD as kubectl users meet it: printer columns, explain, short name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "serving.kubeflow.org_inferenceservices.yaml"
COLUMNS = ["NAME", "URL", "READY", "PREV", "LATEST", "PREVROLLEDOUTREVISION",
           "LATESTREADYREVISION", "AGE", "REASON"]

pytestmark = pytest.mark.usefixtures("operator")


def _crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text())
    return crd


def _predictor_schema() -> dict[str, Any]:
    version = next(v for v in _crd()["spec"]["versions"] if v["name"] == "v1beta1")
    schema: dict[str, Any] = (
        version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["predictor"])
    return schema


def _flat(text: str) -> str:
    return " ".join(text.split())


def _apply_example(cluster: Cluster, namespace: str, example: str) -> str:
    text = (ROOT / "examples" / example).read_text()
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=text)
    name: str = yaml.safe_load(text)["metadata"]["name"]
    return name


def test_get_shows_the_kfserving_printer_columns(cluster: Cluster, namespace: str) -> None:
    names = [_apply_example(cluster, namespace, e) for e in ("sklearn.yaml", "canary.yaml")]
    out = cluster.kubectl("get", "inferenceservices", "-n", namespace)
    lines = out.strip().splitlines()
    assert lines[0].split() == COLUMNS, out
    rows = {line.split()[0] for line in lines[1:]}
    assert rows == set(names), out


def test_printer_columns_read_the_kfserving_status_fields(cluster: Cluster) -> None:
    """The columns read the fields the KFServing SDK and dashboards read (reference 1.7)."""
    version = next(v for v in cluster.get_json("crd", "inferenceservices.serving.kubeflow.org")
                   ["spec"]["versions"] if v["name"] == "v1beta1")
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["URL"] == ".status.url"
    assert columns["Ready"] == ".status.conditions[?(@.type=='Ready')].status"
    assert "tag=='prev'" in columns["Prev"] and "percent" in columns["Prev"]
    assert "latestRevision==true" in columns["Latest"]
    assert columns["Age"] == ".metadata.creationTimestamp"


@pytest.mark.parametrize("resource", ["isvc", "inferenceservice", "inferenceservices",
                                      "inferenceservices.serving.kubeflow.org"])
def test_short_and_long_names_list_the_same_objects(
    cluster: Cluster, namespace: str, resource: str
) -> None:
    name = _apply_example(cluster, namespace, "sklearn.yaml")
    out = cluster.kubectl("get", resource, "-n", namespace, "-o", "name")
    assert out.split() == [f"inferenceservice.serving.kubeflow.org/{name}"]
    single = cluster.get_json(resource, name, "-n", namespace)
    assert single["kind"] == "InferenceService"
    assert single["metadata"]["name"] == name


def test_api_resources_lists_the_short_name(cluster: Cluster) -> None:
    out = cluster.kubectl("api-resources", "--api-group=serving.kubeflow.org", "--no-headers")
    rows = [line.split() for line in out.strip().splitlines()]
    row = next(r for r in rows if r[0] == "inferenceservices")
    assert row[1] == "isvc", out
    assert row[2] == "serving.kubeflow.org/v1beta1"
    assert row[3] == "true"  # namespaced
    assert row[4] == "InferenceService"


def test_explain_predictor_shows_the_model_docs(cluster: Cluster) -> None:
    schema = _predictor_schema()
    out = _flat(cluster.kubectl("explain", "inferenceservice.spec.predictor"))
    assert "KIND: InferenceService" in out and "VERSION: v1beta1" in out, out
    assert _flat(schema["description"]) in out
    for field in ("minReplicas", "maxReplicas", "sklearn", "tensorflow", "containers",
                  "canaryTrafficPercent", "logger", "batcher"):
        description = schema["properties"][field]["description"]
        assert field in out, field
        assert _flat(description) in out, f"{field}: {description!r} not in explain output"
    # Sanity: the docs really come from the models, not from an empty schema.
    assert "Minimum number of replicas" in schema["properties"]["minReplicas"]["description"]
    assert "scikit-learn" in schema["properties"]["sklearn"]["description"]


def test_explain_nested_framework_field(cluster: Cluster) -> None:
    schema = _predictor_schema()["properties"]["sklearn"]["properties"]
    out = _flat(cluster.kubectl("explain", "isvc.spec.predictor.sklearn"))
    for field in ("storageUri", "runtimeVersion", "protocolVersion", "resources"):
        assert field in out
        assert _flat(schema[field]["description"]) in out, field
    leaf = _flat(cluster.kubectl("explain", "isvc.spec.predictor.sklearn.protocolVersion"))
    assert _flat(schema["protocolVersion"]["description"]) in leaf
    assert "v1" in leaf and "v2" in leaf


def test_installed_crd_is_the_generated_one(cluster: Cluster) -> None:
    live = cluster.get_json("crd", "inferenceservices.serving.kubeflow.org")
    assert live["spec"]["names"]["shortNames"] == ["isvc"]
    live_version = next(v for v in live["spec"]["versions"] if v["name"] == "v1beta1")
    file_version = next(v for v in _crd()["spec"]["versions"] if v["name"] == "v1beta1")
    assert live_version["schema"] == file_version["schema"]
    assert live_version.get("subresources") == {"status": {}}
