"""Namespace-scoped mode: the chart's Roles are all the operator needs, and it leaves
InferenceServices outside its namespaces alone.

On a control plane of its own (its webhook configurations must not replace the session
operator's), the operator runs with a token of the chart's ServiceAccount, bound only by what
``helm template --set watchNamespaces={...}`` renders: Roles in the watched and the release
namespace, and a ClusterRole that writes nothing but the operator's own two webhook
configurations. Any cluster-wide list or watch would be refused and logged.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from kfserving_operator.cluster.localplane import find_tool
from tests.support.cluster import Cluster, install_crds, wait_for
from tests.support.knative import KnativeStandIn
from tests.support.operator import run_operator

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "manifests" / "helm" / "kfserving-operator"
SYSTEM = "kfserving-system"
ACCOUNT = "kfserving-controller-manager"
RBAC_KINDS = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding",
              "ConfigMap"}


def _chart_rbac(tmp_path: Path, watched: str) -> list[dict[str, Any]]:
    home = {f"HELM_{kind}_HOME": str(tmp_path / "helm" / kind.lower())
            for kind in ("CACHE", "CONFIG", "DATA")}
    out = subprocess.run(
        [str(find_tool("helm")), "template", "kfserving-operator", str(CHART), "--namespace",
         SYSTEM, "--set", f"watchNamespaces={{{watched}}}"],
        capture_output=True, text=True, check=True, env={**home, "PATH": "/usr/bin:/bin"})
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc and doc["kind"] in RBAC_KINDS]


def _token_kubeconfig(cluster: Cluster, token: str, path: Path) -> str:
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": admin["clusters"][:1],
        "users": [{"name": ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": ACCOUNT, "context": {"cluster": admin["clusters"][0]["name"],
                                                   "user": ACCOUNT}}],
        "current-context": ACCOUNT,
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_namespace_scoped_operator_needs_only_roles_and_leaves_other_namespaces_alone(
        bare_cluster: Cluster, tmp_path: Path, report: Any) -> None:
    cluster = bare_cluster
    install_crds(cluster)  # the Knative and Istio stand-in CRDs too
    watched, other = "team-watched", "team-other"
    for namespace in (SYSTEM, watched, other):
        cluster.kubectl("create", "namespace", namespace)
    rbac = _chart_rbac(tmp_path, watched)
    cluster_rules = [r for d in rbac if d["kind"] == "ClusterRole" for r in d["rules"]]
    assert all(rule.get("resourceNames") for rule in cluster_rules), cluster_rules
    cluster.kubectl("apply", "--server-side", "-f", "-",
                    input="\n---\n".join(yaml.safe_dump(d) for d in rbac))
    identity = f"system:serviceaccount:{SYSTEM}:{ACCOUNT}"
    for resource in ("inferenceservices.serving.kubeflow.org", "services.serving.knative.dev",
                     "configmaps", "namespaces", "customresourcedefinitions"):
        assert cluster.kubectl("auth", "can-i", "list", resource, "--all-namespaces",
                               "--as", identity, check=False).strip() == "no", resource
    token = cluster.kubectl("create", "token", ACCOUNT, "-n", SYSTEM,
                            "--duration=1h").strip()
    kubeconfig = _token_kubeconfig(cluster, token, tmp_path / "scoped.kubeconfig")

    example = yaml.safe_load((ROOT / "examples" / "sklearn.yaml").read_text())
    name = example["metadata"]["name"]
    with run_operator(cluster, tmp_path, kubeconfig=kubeconfig,
                      extra_args=("--watch-namespace", watched)) as operator:
        for namespace in (watched, other):
            cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(example))
        knative = KnativeStandIn(cluster, watched)
        knative.wait_for_ksvc(f"{name}-predictor-default", timeout=60)
        knative.observe(f"{name}-predictor-default", ready=True)
        wait_for(lambda: cluster.kubectl("get", "isvc", name, "-n", watched, "-o",
                                         "jsonpath={.status.url}"),
                 timeout=60, message="the watched InferenceService's status")
        # By now the other namespace's object has been there as long: nothing happened to it.
        untouched = cluster.get_json("isvc", name, "-n", other)
        assert "status" not in untouched
        # Not defaulted either: the webhooks only see the watched namespace.
        assert "protocolVersion" not in untouched["spec"]["predictor"]["sklearn"]
        assert json.loads(cluster.kubectl("get", "services.serving.knative.dev", "-n", other,
                                          "-o", "json"))["items"] == []
        log = operator.log()
    for refusal in ("Forbidden", "forbidden", "Not enough permissions", " 403"):
        assert refusal not in log, f"the operator was refused something:\n{log[-4000:]}"
    report(f"namespace-scoped operator: reconciled {watched}/{name}, left {other}/{name} alone, "
           "no request refused with Roles only")
