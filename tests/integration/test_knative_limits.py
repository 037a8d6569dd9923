"""Specs Knative or Kubernetes would refuse later are refused at admission, naming the field.

Before the fix these were admitted: the InferenceService was stored, and only the Knative
Service apply (or the pod) failed afterwards, retried forever. A write that still fails
after admission posts one ApplyFailed Warning event per cause, not one per retry.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.support.cluster import Cluster, KubectlError, wait_for
from tests.support.isvc import sklearn_isvc
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.usefixtures("operator")


def custom(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "serving.kubeflow.org/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "custom"}, "spec": {"predictor": {"containers": list(containers)}}}


REFUSED: list[tuple[str, dict[str, Any], str, str]] = [
    ("concurrency", sklearn_isvc("c", containerConcurrency=1001),
     "spec.predictor.containerConcurrency", "less than or equal to 1000"),
    ("timeout", sklearn_isvc("t", timeout=601), "spec.predictor.timeout",
     "less than or equal to 600"),
    ("max-replicas", sklearn_isvc("m", maxReplicas=2**31), "spec.predictor.maxReplicas",
     "32-bit"),
    ("duplicate-names", custom({"image": "img-x"}, {"name": "side", "image": "img-y"},
                               {"name": "side", "image": "img-y"}),
     "spec.predictor.containers[2].name", "duplicate container name"),
    ("two-ports", custom({"image": "img-x", "ports": [{"containerPort": 8080},
                                                  {"containerPort": 8081}]}),
     "spec.predictor.containers[0].ports[1]", "more than one container port"),
    ("empty-env-name", custom({"image": "img-x", "env": [{"name": "", "value": "v"}]}),
     "spec.predictor.containers[0].env[0].name", "is required"),
    ("env-field-ref", custom({"image": "img-x", "env": [
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}),
     "spec.predictor.containers[0].env[0].valueFrom.fieldRef", "podspec-fieldref"),
    ("image-reference", custom({"image": "Not An/Image"}), "spec.predictor.containers[0].image",
     "container image reference"),
    ("negative-target", {**sklearn_isvc("neg"), "metadata": {
        "name": "neg", "annotations": {"autoscaling.knative.dev/target": "-1"}}},
     "metadata.annotations[autoscaling.knative.dev/target]", "at least 0.01"),
    ("negative-cpu", {**sklearn_isvc("q"), "spec": {"predictor": {"sklearn": {
        "storageUri": "gs://m/i", "resources": {"limits": {"cpu": "-1"}}}}}},
     "spec.predictor.sklearn.resources.limits.cpu", "greater than or equal to 0"),
]


@pytest.mark.parametrize(("spec", "path", "fragment"), [case[1:] for case in REFUSED],
                         ids=[case[0] for case in REFUSED])
def test_refused_at_admission_with_the_field(cluster: Cluster, namespace: str,
                                             spec: dict[str, Any], path: str,
                                             fragment: str) -> None:
    with pytest.raises(KubectlError) as refused:
        cluster.apply_yaml(spec, namespace)
    assert path in refused.value.stderr and fragment in refused.value.stderr
    assert not cluster.kubectl("get", "isvc", "-n", namespace, "-o", "name")


def test_a_failing_apply_posts_one_event_per_cause(cluster: Cluster, namespace: str,
                                                   operator: OperatorProcess | None) -> None:
    # A cause admission cannot see: a policy that refuses Knative Services in the namespace.
    policy = f"deny-ksvc-{namespace}"
    cluster.apply_yaml({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": policy},
        "spec": {"failurePolicy": "Fail",
                 "matchConstraints": {"resourceRules": [{
                     "apiGroups": ["serving.knative.dev"], "apiVersions": ["*"],
                     "operations": ["CREATE", "UPDATE"], "resources": ["services"]}]},
                 "validations": [{"expression": "false",
                                  "message": "Knative Services are frozen here"}]}})
    cluster.apply_yaml({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": policy},
        "spec": {"policyName": policy, "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": {"matchLabels": {
                     "kubernetes.io/metadata.name": namespace}}}}})
    try:
        probe = json.dumps({"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                            "metadata": {"name": "probe", "namespace": namespace},
                            "spec": {}})

        def refused() -> bool:
            try:
                cluster.kubectl("create", "--dry-run=server", "-f", "-", input=probe)
            except KubectlError as exc:
                return "frozen here" in exc.stderr
            return False

        wait_for(refused, message="the policy in force")
        cluster.apply_yaml(sklearn_isvc("iris"), namespace)

        def apply_failed() -> list[dict[str, Any]]:
            events = cluster.get_json("events", "-n", namespace, "--field-selector",
                                      "involvedObject.name=iris,reason=ApplyFailed")
            return list(events["items"])

        first = wait_for(apply_failed, message="an ApplyFailed event")
        assert "frozen here" in first[0]["message"]
        time.sleep(8)  # retries at 0.5, 1, 2, 4 s: the same cause each time
        assert len(apply_failed()) == 1, json.dumps([e["message"] for e in apply_failed()])
        assert operator is None or "Traceback" not in operator.log()
    finally:
        for kind in ("validatingadmissionpolicybinding", "validatingadmissionpolicy"):
            cluster.kubectl("delete", kind, policy, "--ignore-not-found")
