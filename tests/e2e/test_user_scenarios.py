"""User scenarios, driven only through kubectl and the CLI, against any cluster.

On the local control plane Knative cannot run, so the scenarios stand in for it through the
API (``KnativeStandIn``); on a kind cluster with real Knative and Istio
(``KFSERVING_TEST_KUBECONFIG`` with ``KFSERVING_TEST_SKIP_DEV_CRDS=1``) Knative does its own part
and the scenarios only wait.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfserving_operator.operator.reconciler import is_subset
from tests.support.cluster import Cluster, KubectlError, wait_for
from tests.support.knative import KnativeStandIn

pytestmark = pytest.mark.usefixtures("operator")

ROOT = Path(__file__).resolve().parents[2]
REAL_KNATIVE = bool(os.environ.get("KFSERVING_TEST_SKIP_DEV_CRDS"))


def _stand_in_ready(cluster: Cluster, namespace: str, ksvc: str) -> None:
    if REAL_KNATIVE:
        return
    knative = KnativeStandIn(cluster, namespace)
    knative.wait_for_ksvc(ksvc)
    knative.observe(ksvc, ready=True)


def _render(path: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "kfserving_operator", "render", "-f", str(path)],
        capture_output=True, text=True, check=True,
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_sklearn_quickstart(cluster: Cluster, namespace: str) -> None:
    """The README flow: apply the example, wait for Ready, read the URL."""
    cluster.kubectl("apply", "-n", namespace, "-f", str(ROOT / "examples" / "sklearn.yaml"))
    name = yaml.safe_load((ROOT / "examples" / "sklearn.yaml").read_text())["metadata"]["name"]
    _stand_in_ready(cluster, namespace, f"{name}-predictor-default")
    cluster.kubectl("wait", "--for=condition=Ready", f"isvc/{name}", "-n", namespace,
                    "--timeout=120s")
    table = cluster.kubectl("get", "isvc", name, "-n", namespace)
    assert f"http://{name}.{namespace}." in table
    assert "True" in table


def test_render_previews_what_the_cluster_gets(cluster: Cluster, namespace: str) -> None:
    """`kfserving-operator render` shows the same Knative Service the operator applies."""
    example = ROOT / "examples" / "transformer.yaml"
    rendered = {(d["kind"], d["metadata"]["name"]): d for d in _render(example)}
    cluster.kubectl("apply", "-n", namespace, "-f", str(example))
    for (kind, name), doc in rendered.items():
        if kind != "Service" or doc["apiVersion"] != "serving.knative.dev/v1":
            continue
        live = wait_for(
            lambda n=name: json.loads(cluster.kubectl(
                "get", "services.serving.knative.dev", n, "-n", namespace, "-o", "json",
                check=False) or "null"),
            message=f"ksvc {name}")
        # Everything rendered is live; a real Knative adds its defaults on top.
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


def test_canary_rollout_as_documented(cluster: Cluster, namespace: str) -> None:
    """examples/canary/: each step's YAML applied in order behaves as the walkthrough says."""
    steps = sorted((ROOT / "examples" / "canary").glob("step-*.yaml"))
    if not steps or REAL_KNATIVE:
        pytest.skip("walkthrough steps are checked with the Knative stand-in")
    knative = KnativeStandIn(cluster, namespace)
    first = yaml.safe_load(steps[0].read_text())
    ksvc = f"{first['metadata']['name']}-predictor-default"
    for step in steps:
        cluster.kubectl("apply", "-n", namespace, "-f", str(step))
        wait_for(lambda s=step: _template_matches(knative, ksvc, s), message=f"{step.name}")
        knative.observe(ksvc, ready=True)
        cluster.kubectl("wait", "--for=condition=Ready", f"isvc/{first['metadata']['name']}",
                        "-n", namespace, "--timeout=60s")


def _template_matches(knative: KnativeStandIn, ksvc: str, step: Path) -> bool:
    uri = yaml.safe_load(step.read_text())["spec"]["predictor"]["sklearn"]["storageUri"]
    out = knative.cluster.kubectl("get", "services.serving.knative.dev", ksvc, "-n",
                                  knative.namespace, "-o", "json", check=False)
    return bool(out) and uri in out
