"""The raw-only installs: the Helm chart with ``rawOnly`` and the kustomize raw-only overlay
grant the raw children, no Knative or Istio permission, and default to RawDeployment."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfserving_operator.api.config import parse_operator_config
from kfserving_operator.cluster.localplane import find_tool, project_root

ROOT = project_root()
CHART = ROOT / "manifests" / "helm" / "kfserving-operator"
KUSTOMIZE = ROOT / "manifests" / "kustomize"
SERVERLESS_GROUPS = {"serving.knative.dev", "networking.istio.io"}
RAW_RESOURCES = {("apps", "deployments"), ("autoscaling", "horizontalpodautoscalers"),
                 ("networking.k8s.io", "ingresses"), ("gateway.networking.k8s.io", "httproutes")}


def _docs(args: list[str]) -> list[dict[str, Any]]:
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _helm(*values: str) -> list[dict[str, Any]]:
    return _docs([str(find_tool("helm")), "template", "kfserving", str(CHART),
                  "--namespace", "kfserving-system", *values])


def _kustomize(path: Path) -> list[dict[str, Any]]:
    return _docs([str(find_tool("kubectl")), "kustomize", str(path)])


def _rules(objects: list[dict[str, Any]]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(group, resource, tuple(rule.get("verbs", ())))
            for obj in objects if obj["kind"] in ("ClusterRole", "Role")
            for rule in obj.get("rules", [])
            for group in rule.get("apiGroups", []) for resource in rule.get("resources", [])]


def _config(objects: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = next(o for o in objects if o["kind"] == "ConfigMap"
                                and o["metadata"]["name"] == "inferenceservice-config")["data"]
    return data


def _check_raw_only(objects: list[dict[str, Any]]) -> None:
    rules = _rules(objects)
    assert not [r for r in rules if r[0] in SERVERLESS_GROUPS], "Knative/Istio permissions left"
    granted = {(group, resource) for group, resource, verbs in rules if "patch" in verbs}
    assert granted >= RAW_RESOURCES
    data = _config(objects)
    assert json.loads(data["deploy"])["defaultDeploymentMode"] == "RawDeployment"
    result = parse_operator_config(data)
    assert result.problems == ()
    assert result.config.deploy.default_deployment_mode == "RawDeployment"
    for obj in objects:
        if obj["kind"].endswith("WebhookConfiguration"):
            text = json.dumps(obj)
            assert "knative" not in text and "istio" not in text


@pytest.mark.parametrize("values", [(), ("--set", "watchNamespaces={models}")])
def test_helm_raw_only(values: tuple[str, ...]) -> None:
    _check_raw_only(_helm("--set", "rawOnly=true", *values))
    default = _helm(*values)
    assert {r[0] for r in _rules(default)} & SERVERLESS_GROUPS == SERVERLESS_GROUPS
    assert json.loads(_config(default)["deploy"])["defaultDeploymentMode"] == "Serverless"


def test_kustomize_raw_only_overlay() -> None:
    _check_raw_only(_kustomize(KUSTOMIZE / "overlays" / "raw-only"))
    base = _kustomize(KUSTOMIZE / "base")
    assert {r[0] for r in _rules(base)} & SERVERLESS_GROUPS == SERVERLESS_GROUPS
    assert {(g, r) for g, r, _ in _rules(base)} >= RAW_RESOURCES
