"""A status that says why: failed revisions as real Knative reports them, and their causes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kfserving_operator.reconcile import Observed
from kfserving_operator.reconcile.conditions import route_ready_type
from kfserving_operator.reconcile.failure import (
    FROM_REVISION,
    FROM_SERVICE,
    failed_revision,
    revision_failure,
)
from tests.unit.test_reconcile_plan import conditions, isvc, ksvc, step

KSVC = "iris-predictor-default"
REV1 = f"{KSVC}-00001"
REV2 = f"{KSVC}-00002"
STORAGE_URI = "gs://kfserving-examples/models/sklearn/iris"


def failed_first(message: str = "Container failed with: ", revision: str = REV1,
                 generation: int = 1) -> dict[str, Any]:
    """A Knative Service whose first revision failed, with the conditions real Knative writes.

    Measured on the real-Knative lane: Ready and RoutesReady say RevisionMissing, only
    ConfigurationsReady carries RevisionFailed and the Revision's message; the URL is set.
    """
    missing = f'Configuration "{KSVC}" does not have any ready Revision.'
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": KSVC, "namespace": "default", "generation": generation},
        "status": {
            "observedGeneration": generation,
            "url": f"http://{KSVC}.default.example.com",
            "latestCreatedRevisionName": revision,
            "conditions": [
                {"type": "ConfigurationsReady", "status": "False", "reason": "RevisionFailed",
                 "message": f'Revision "{revision}" failed with message: {message}.'},
                {"type": "Ready", "status": "False", "reason": "RevisionMissing",
                 "message": missing},
                {"type": "RoutesReady", "status": "False", "reason": "RevisionMissing",
                 "message": missing},
            ],
        },
    }


def pod(revision: str = REV1, *, container: dict[str, Any] | None = None,
        init: dict[str, Any] | None = None, scheduled: dict[str, Any] | None = None,
        memory_limit: str | None = None) -> dict[str, Any]:
    """A pod of ``revision`` with the given container / init container status."""
    resources = {"limits": {"memory": memory_limit}} if memory_limit else {}
    status: dict[str, Any] = {"phase": "Pending", "conditions": []}
    if scheduled is not None:
        status["conditions"].append({"type": "PodScheduled", **scheduled})
    else:
        status["conditions"].append({"type": "PodScheduled", "status": "True"})
        status["containerStatuses"] = [
            {"name": "queue-proxy", "ready": False, "restartCount": 0,
             "state": {"running": {}}},
            {"name": "kserve-container", "ready": False, "restartCount": 3,
             "image": "kserve/sklearnserver:v0.6.1", **(container or {"state": {"running": {}}})},
        ]
        if init is not None:
            status["initContainerStatuses"] = [{"name": "storage-initializer", **init}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{revision}-deployment-abc-xyz", "namespace": "default",
                     "labels": {"serving.knative.dev/revision": revision}},
        "spec": {
            "initContainers": [{"name": "storage-initializer",
                                "image": "kfserving/storage-initializer:v0.6.1"}],
            "containers": [
                {"name": "kserve-container", "image": "kserve/sklearnserver:v0.6.1",
                 "resources": resources},
                {"name": "queue-proxy", "image": "queue"},
            ],
        },
        "status": status,
    }


def seen(service: dict[str, Any], pods: tuple[dict[str, Any], ...] = (),
         revision: dict[str, Any] | None = None) -> Observed:
    name = service["status"]["latestCreatedRevisionName"]
    return Observed(ksvcs={"predictor": service}, pods={name: pods} if pods else {},
                    revisions={name: revision} if revision else {})


def new_isvc() -> dict[str, Any]:
    return isvc(predictor={"sklearn": {"storageUri": STORAGE_URI}})


CRASH = {"state": {"waiting": {"reason": "CrashLoopBackOff",
                               "message": "back-off 40s restarting failed container"}},
         "lastState": {"terminated": {"exitCode": 3, "reason": "Error",
                                      "message": "model file not found"}}}
OOM = {"state": {"waiting": {"reason": "CrashLoopBackOff"}},
       "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
IMAGE = {"state": {"waiting": {"reason": "ErrImagePull",
                               "message": 'failed to pull "kserve/sklearnserver:nope": not found'}}}
INIT_FAILED = {"state": {"waiting": {"reason": "CrashLoopBackOff"}},
               "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                            "message": "403 Forbidden: gs://kfserving-examples"}}}
PODINIT = {"state": {"waiting": {"reason": "PodInitializing"}}}
UNSCHEDULABLE = {"status": "False", "reason": "Unschedulable",
                 "message": "0/1 nodes are available: 1 Insufficient memory."}

CASES = {
    "image": (pod(container=IMAGE), "ImagePullBackOff",
              ['image "kserve/sklearnserver:v0.6.1" of container kserve-container cannot be '
               "pulled", "ErrImagePull", "not found"]),
    "crash-loop": (pod(container=CRASH), "CrashLoopBackOff",
                   ["container kserve-container keeps exiting with exit code 3",
                    "model file not found"]),
    "oom": (pod(container=OOM, memory_limit="256Mi"), "OOMKilled",
            ["ran out of memory (OOMKilled, exit code 137)", "memory limit of 256Mi"]),
    "storage-initializer": (pod(container=PODINIT, init=INIT_FAILED), "StorageInitializerFailed",
                            ["storage-initializer could not download the model (exit code 1)",
                             "403 Forbidden", "storageUri"]),
    "unschedulable": (pod(scheduled=UNSCHEDULABLE), "Unschedulable",
                      ["cannot be scheduled", "0/1 nodes are available: 1 Insufficient memory"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_ready_names_the_cause_not_revision_missing(case: str) -> None:
    the_pod, reason, words = CASES[case]
    obj = new_isvc()
    plan = step(obj, seen(failed_first(), (the_pod,)))
    conds = conditions(plan)
    for type_ in ("Ready", "PredictorReady", "PredictorConfigurationReady"):
        assert conds[type_]["status"] == "False", type_
        assert conds[type_]["reason"] == reason, type_
        assert conds[type_]["message"].startswith(f"revision {REV1}: "), type_
        assert conds[type_]["message"].endswith("; no revision is serving"), type_
        for word in words:
            assert word in conds[type_]["message"], (type_, word)
        assert "RevisionMissing" not in conds[type_]["message"]
    # The route really has no revision: that stays Knative's word.
    assert conds["PredictorRouteReady"]["reason"] == "RevisionMissing"
    assert conds["IngressReady"]["reason"] == "Predictor ingress not created"
    assert words[0] in conds["IngressReady"]["message"]
    # One Warning that says it; the same cause found again says nothing more.
    assert plan.events == (("Warning", reason, f"Predictor: {conds['Ready']['message']}"),)
    again = step(obj, seen(failed_first(), (the_pod,)))
    assert again.events == ()
    assert again.status == plan.status


def test_without_pods_the_revision_condition_names_the_exit_code() -> None:
    revision = {"metadata": {"name": REV1},
                "status": {"conditions": [
                    {"type": "Ready", "status": "False", "reason": "ExitCode137",
                     "message": "Container failed with: "}]}}
    found = revision_failure(failed_first(), revision, ())
    assert found is not None
    assert (found.reason, found.source) == ("ExitCode137", FROM_REVISION)
    assert found.message == f"revision {REV1} failed: ExitCode137: Container failed with:"


def test_without_revision_or_pods_configurations_ready_is_the_cause() -> None:
    message = 'Back-off pulling image "kserve/sklearnserver:nope"'
    obj = new_isvc()
    plan = step(obj, seen(failed_first(message)))
    ready = conditions(plan)["Ready"]
    assert ready["reason"] == "RevisionFailed"
    assert ready["message"] == (f'Revision "{REV1}" failed with message: {message}; '
                                "no revision is serving")
    found = revision_failure(failed_first(message))
    assert found is not None and found.source == FROM_SERVICE


def test_a_cause_read_from_a_pod_outlives_the_pod() -> None:
    """Knative scales a failed revision's pods away; the status keeps the better words."""
    obj = new_isvc()
    first = step(obj, seen(failed_first(), (pod(container=OOM),)))
    later = step(obj, seen(failed_first()))
    assert conditions(later)["Ready"] == conditions(first)["Ready"]
    assert later.events == ()


def test_pods_of_other_revisions_are_ignored() -> None:
    found = revision_failure(failed_first(), None, (pod(REV2, container=OOM),))
    assert found is not None and found.source == FROM_SERVICE


def test_a_healthy_or_updating_service_is_not_looked_into() -> None:
    assert failed_revision(None) is None
    assert failed_revision(ksvc("iris")) is None
    starting = ksvc("iris", ready="Unknown", reason="RevisionMissing", message="waiting",
                    latest_ready=None, latest_created=1)
    assert failed_revision(starting) is None
    assert failed_revision(failed_first()) == REV1


def test_fix_applied_turns_ready_again() -> None:
    obj = new_isvc()
    step(obj, seen(failed_first(), (pod(container=CRASH),)))
    obj["metadata"]["generation"] = 2
    # Knative has not caught up with the fix yet: no stale cause is shown as current.
    stale = copy.deepcopy(failed_first())
    stale["metadata"]["generation"] = 2
    waiting = conditions(step(obj, seen(stale, (pod(container=CRASH),))))
    assert waiting["PredictorReady"]["status"] == "Unknown"
    assert waiting["PredictorReady"]["reason"] == "KnativeServiceUpdating"
    fixed = ksvc("iris", latest_ready=2, latest_created=2, generation=2)
    plan = step(obj, Observed(ksvcs={"predictor": fixed}))
    conds = conditions(plan)
    assert conds["Ready"]["status"] == "True"
    assert conds["PredictorConfigurationReady"]["status"] == "True"
    assert [e[1] for e in plan.events] == ["InferenceServiceReady"]


def test_failed_canary_says_the_previous_revision_keeps_serving() -> None:
    obj = new_isvc()
    step(obj, Observed(ksvcs={"predictor": ksvc("iris")}))
    assert conditions(step(obj, Observed(ksvcs={"predictor": ksvc("iris")})))["Ready"][
        "status"] == "True"
    obj["spec"]["predictor"]["canaryTrafficPercent"] = 20
    obj["spec"]["predictor"]["sklearn"]["storageUri"] = "gs://bucket/v2"
    obj["metadata"]["generation"] = 2
    message = f'Revision "{REV2}" failed with message: Container failed with: .'
    failed = ksvc("iris", ready="False", reason="RevisionFailed", message=message,
                  routes="True", latest_ready=1, latest_created=2, generation=2,
                  traffic=[{"latestRevision": True, "percent": 20, "rev": 1},
                           {"latestRevision": False, "percent": 80, "rev": 1, "tag": "prev"}])
    plan = step(obj, seen(failed, (pod(REV2, container=CRASH),)))
    conds = conditions(plan)
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "CrashLoopBackOff"
    assert conds["Ready"]["message"].endswith(
        f"the previous revision {REV1} keeps serving all traffic, {REV2} gets none")
    assert conds["PredictorRouteReady"]["status"] == "True"
    traffic = plan.status["components"]["predictor"]["traffic"]
    assert {t["revisionName"] for t in traffic} == {REV1}
    assert [e[1] for e in plan.events] == ["InferenceServiceNotReady", "CrashLoopBackOff"]
    assert "keeps serving" in plan.events[1][2]


def test_explainer_route_condition_has_upstreams_name() -> None:
    assert route_ready_type("explainer") == "ExplainerRoutesReady"
    assert route_ready_type("predictor") == "PredictorRouteReady"
    assert route_ready_type("transformer") == "TransformerRouteReady"
