"""The generated CRD: committed file up to date, structural schema, printer columns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfserving_operator.api.crd import build_crd, main, render_crd_yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "serving.kubeflow.org_inferenceservices.yaml"


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_committed_crd_is_up_to_date() -> None:
    assert CRD_FILE.read_text() == render_crd_yaml(), (
        "crds/serving.kubeflow.org_inferenceservices.yaml is stale: "
        "run python -m kfserving_operator.api.crd"
    )


def test_render_is_deterministic_and_parses_back() -> None:
    text = render_crd_yaml()
    assert text == render_crd_yaml()
    assert yaml.safe_load(text) == build_crd()


def test_crd_identity() -> None:
    crd = build_crd()
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == "inferenceservices.serving.kubeflow.org"
    spec = crd["spec"]
    assert spec["group"] == "serving.kubeflow.org"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "InferenceService",
        "listKind": "InferenceServiceList",
        "plural": "inferenceservices",
        "singular": "inferenceservice",
        "shortNames": ["isvc"],
    }
    version = spec["versions"][0]
    assert (version["name"], version["served"], version["storage"]) == ("v1beta1", True, True)
    # v1alpha2 is served too, never stored (tests/unit/test_api_crd_legacy.py).
    assert [v["name"] for v in spec["versions"]] == ["v1beta1", "v1alpha2"]
    assert version["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    columns = build_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    traffic = ".status.components.predictor.traffic"
    assert [(c["name"], c["type"], c["jsonPath"]) for c in columns] == [
        ("URL", "string", ".status.url"),
        ("Ready", "string", ".status.conditions[?(@.type=='Ready')].status"),
        ("Prev", "integer", f"{traffic}[?(@.tag=='prev')].percent"),
        ("Latest", "integer", f"{traffic}[?(@.latestRevision==true)].percent"),
        ("PrevRolledoutRevision", "string", f"{traffic}[?(@.tag=='prev')].revisionName"),
        ("LatestReadyRevision", "string", f"{traffic}[?(@.latestRevision==true)].revisionName"),
        ("Age", "date", ".metadata.creationTimestamp"),
        ("Reason", "string", ".status.conditions[?(@.type=='Ready')].reason"),
    ]


FORBIDDEN = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "default", "const", "uniqueItems"}


def test_schema_is_structural() -> None:
    schema = _schema()
    nodes = list(_walk(schema))
    assert len(nodes) > 300
    for path, node in nodes:
        assert not FORBIDDEN & set(node), f"{path} has {FORBIDDEN & set(node)}"
        typed = "type" in node
        assert (
            typed
            or node.get("x-kubernetes-preserve-unknown-fields")
            or node.get("x-kubernetes-int-or-string")
        ), f"{path} has no type"
        if node.get("type") == "array":
            assert isinstance(node.get("items"), dict), f"{path} array without items"
        if "properties" in node:
            assert node.get("type") == "object", path
            assert "additionalProperties" not in node, path
            for required in node.get("required", []):
                assert required in node["properties"], f"{path} requires unknown {required}"
        if node.get("x-kubernetes-preserve-unknown-fields"):
            assert "properties" not in node and "additionalProperties" not in node, path


def test_top_level_shape() -> None:
    schema = _schema()
    assert schema["type"] == "object"
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["properties"]["spec"]["required"] == ["predictor"]
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}


def test_status_is_fully_typed() -> None:
    status = _schema()["properties"]["status"]
    for path, node in _walk(status, ".status"):
        assert not node.get("x-kubernetes-preserve-unknown-fields"), path
    traffic = status["properties"]["components"]["additionalProperties"]["properties"]["traffic"]
    assert set(traffic["items"]["properties"]) == {
        "tag",
        "revisionName",
        "configurationName",
        "latestRevision",
        "percent",
        "url",
    }
    condition = status["properties"]["conditions"]["items"]
    assert condition["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert condition["required"] == ["type", "status"]


def test_spec_details() -> None:
    predictor = _schema()["properties"]["spec"]["properties"]["predictor"]
    props = predictor["properties"]
    assert props["minReplicas"] == {
        "type": "integer",
        "minimum": 0,
        "description": props["minReplicas"]["description"],
    }
    assert props["canaryTrafficPercent"]["maximum"] == 100
    assert props["logger"]["properties"]["mode"]["enum"] == ["all", "request", "response"]
    assert props["scaleMetric"]["enum"] == ["cpu", "memory", "concurrency", "rps"]
    assert props["affinity"] == {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "description": props["affinity"]["description"],
    }
    assert props["tolerations"]["items"] == {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    assert {"hostPID", "hostIPC", "setHostnameAsFQDN", "serviceAccountName"} <= set(props)
    sklearn = props["sklearn"]["properties"]
    assert sklearn["protocolVersion"]["enum"] == ["v1", "v2"]
    assert sklearn["resources"]["properties"]["limits"]["additionalProperties"] == {
        "x-kubernetes-int-or-string": True
    }
    assert "modelClassName" in props["pytorch"]["properties"]
    assert "modelClassName" not in sklearn
    alibi = _schema()["properties"]["spec"]["properties"]["explainer"]["properties"]["alibi"]
    assert alibi["required"] == ["type"]
    assert "Counterfactuals" in alibi["properties"]["type"]["enum"]


def test_every_spec_field_has_a_description() -> None:
    spec = _schema()["properties"]["spec"]
    missing = [
        path
        for path, node in _walk(spec, ".spec")
        if not path.endswith(("[]", "{}")) and not node.get("description")
    ]
    assert missing == []


def test_main_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "crd.yaml"
    assert main(["--check", "--output", str(target)]) == 1
    assert main(["--output", str(target)]) == 0
    assert target.read_text() == render_crd_yaml()
    assert main(["--check", "--output", str(target)]) == 0
    target.write_text(target.read_text().replace("shortNames", "shortNamez"))
    capsys.readouterr()
    assert main(["--check", "--output", str(target)]) == 1
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "-    shortNamez:" in lines and "+    shortNames:" in lines
    assert "is stale" in err
