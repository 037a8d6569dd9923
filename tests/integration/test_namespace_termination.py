"""A terminating namespace: the operator stands down instead of fighting the namespace controller.

Before the fix, while a namespace of 300 InferenceServices terminated, the operator re-applied
the children the namespace controller removed: 1 849 refused applies, 300 status patches and
300 failed events in 37 s. Now the first refusal (403, NamespaceTerminating) tells it the
namespace is going away, and it leaves that namespace's InferenceServices alone.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest
import yaml

from tests.support.cluster import Cluster, wait_for
from tests.support.isvc import sklearn_isvc, wait_condition
from tests.support.knative import KnativeStandIn
from tests.support.operator import OperatorProcess

COUNT = 12
# Reconcile workers that may each hit the first refusal before the namespace is marked.
WORKERS = 8


def test_terminating_namespace_gets_no_reapplies_status_patches_or_events(
        cluster: Cluster, operator: OperatorProcess | None) -> None:
    if operator is None or operator.audit_log is None:
        pytest.skip("counts requests in the local control plane's audit log")
    namespace = f"t-term-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    items = [{**sklearn_isvc(f"m{i}"), "metadata": {"name": f"m{i}", "namespace": namespace}}
             for i in range(COUNT)]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(items))
    knative = KnativeStandIn(cluster, namespace)
    for i in range(COUNT):
        knative.wait_for_ksvc(f"m{i}-predictor-default")
        knative.observe(f"m{i}-predictor-default", ready=True)
    for i in range(COUNT):
        wait_condition(cluster, namespace, f"m{i}", "Ready", "True")

    offset = operator.audit_offset()
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    wait_for(lambda: not cluster.kubectl("get", "namespace", namespace, "--ignore-not-found",
                                         "-o", "name"),
             timeout=120, message=f"namespace {namespace} to be gone")
    writes = operator.writes_since(offset, namespace)
    refused = [w for w in writes if w.get("responseStatus", {}).get("code") == 403]
    status = [w for w in writes if w["objectRef"].get("subresource") == "status"]
    events = [w for w in writes if w["objectRef"].get("resource") == "events"]
    summary = Counter((w["verb"], w["objectRef"].get("resource"),
                       w["objectRef"].get("subresource"),
                       w.get("responseStatus", {}).get("code")) for w in writes)
    shown = json.dumps({str(k): v for k, v in summary.items()}, indent=1)
    assert len(refused) <= WORKERS, shown
    assert status == [], shown
    assert events == [], shown
    assert "Traceback" not in operator.log()
