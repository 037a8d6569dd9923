"""Raw mode's plan: status from the live Deployment, ReplicaSets and pods; canary; deletes."""

from __future__ import annotations

import copy
from typing import Any

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.podmutation.credentials import CredentialSources
from kfserving_operator.podmutation.mutator import mutate_pod
from kfserving_operator.reconcile.plan import Plan, plan_reconcile
from kfserving_operator.render import RENDER_TIME
from tests.support.raw import (
    accepted_route,
    complete_deployment,
    key,
    observed,
    simulated,
    starting_deployment,
)

DEPLOYMENT = "model-predictor-default"
DEFAULT = OperatorConfig()
GATEWAY = OperatorConfig.model_validate({"ingress": {"enableGatewayApi": True}})


def _isvc(generation: int = 1, **predictor: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kubeflow.org/v1beta1", "kind": "InferenceService",
        "metadata": {"name": "model", "namespace": "default", "uid": "u1",
                     "generation": generation,
                     "annotations": {"serving.kubeflow.org/deploymentMode": "RawDeployment"}},
        "spec": {"predictor": {"sklearn": {"storageUri": "gs://bucket/model"}, **predictor}},
    }


def _plan(isvc: dict[str, Any], children: list[dict[str, Any]], config: OperatorConfig =
          DEFAULT, **extra: Any) -> Plan:
    return plan_reconcile(isvc, config, observed(children, **extra), RENDER_TIME)


def _cond(plan: Plan, type_: str) -> dict[str, Any]:
    return next(c for c in plan.status["conditions"] if c["type"] == type_)


def _deployment(plan: Plan, name: str = DEPLOYMENT) -> dict[str, Any]:
    return next(o for o in plan.apply if o["kind"] == "Deployment"
                and o["metadata"]["name"] == name)


def test_new_isvc_waits_for_its_deployment_and_records_the_mode() -> None:
    plan = _plan(_isvc(generation=3), [])
    assert _cond(plan, "PredictorReady")["reason"] == "DeploymentNotCreated"
    assert _cond(plan, "Ready")["status"] == "Unknown"
    assert plan.status["deploymentMode"] == "RawDeployment"
    # the InferenceService's own generation, never the Deployment's
    assert plan.status["observedGeneration"] == 3
    assert plan.status["url"] == "http://model-default.example.com"
    assert [o["kind"] for o in plan.apply] == [
        "Deployment", "Service", "HorizontalPodAutoscaler", "Ingress"]


def _live(plan: Plan, **status: Any) -> dict[str, Any]:
    live = starting_deployment(_deployment(plan))
    live["status"].update(status)
    return live


def _condition(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def test_starting_deployment_is_unknown_with_its_reason() -> None:
    first = _plan(_isvc(), [])
    plan = _plan(_isvc(), [_live(first), *first.apply[1:]])
    cond = _cond(plan, "PredictorReady")
    assert (cond["status"], cond["reason"]) == ("Unknown", "MinimumReplicasUnavailable")
    assert _cond(plan, "IngressReady")["status"] == "True"


def test_replica_failure_is_reported() -> None:
    first = _plan(_isvc(), [])
    live = _live(first)
    live["status"]["conditions"].append(_condition(
        "ReplicaFailure", "True", "FailedCreate", 'pods "x" is forbidden: exceeded quota'))
    plan = _plan(_isvc(), [live])
    cond = _cond(plan, "PredictorReady")
    assert (cond["status"], cond["reason"]) == ("False", "ReplicaFailure")
    assert "exceeded quota" in cond["message"] and "FailedCreate" in cond["message"]
    assert _cond(plan, "Ready")["reason"] == "ReplicaFailure"


def test_progress_deadline_exceeded() -> None:
    first = _plan(_isvc(), [])
    live = _live(first)
    live["status"]["conditions"][1] = _condition(
        "Progressing", "False", "ProgressDeadlineExceeded", 'ReplicaSet "x" has timed out')
    cond = _cond(_plan(_isvc(), [live]), "PredictorReady")
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")


def _replica_set(name: str, revision: str, pod_hash: str, ready: int = 0) -> dict[str, Any]:
    return {"kind": "ReplicaSet", "metadata": {
        "name": name, "labels": {"pod-template-hash": pod_hash},
        "annotations": {"deployment.kubernetes.io/revision": revision}},
        "status": {"readyReplicas": ready}}


def _pod(name: str, pod_hash: str, status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"pod-template-hash": pod_hash}},
            "spec": {"containers": [{"name": "kfserving-container", "image": "img:1",
                                     "resources": {"limits": {"memory": "1Gi"}}}]},
            "status": status}


def test_pod_causes_of_the_current_revision_are_reported() -> None:
    first = _plan(_isvc(), [])
    live = _live(first)
    rs = _replica_set(f"{DEPLOYMENT}-abc", "1", "abc")
    old_rs = _replica_set(f"{DEPLOYMENT}-old", "0", "old", ready=1)
    crash = _pod("p1", "abc", {"containerStatuses": [{
        "name": "kfserving-container",
        "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}},
        "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]})
    old_pull = _pod("p0", "old", {"containerStatuses": [{
        "name": "kfserving-container", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]})
    plan = _plan(_isvc(), [live], raw_replica_sets={DEPLOYMENT: (rs, old_rs)},
                 raw_pods={DEPLOYMENT: (old_pull, crash)})
    cond = _cond(plan, "PredictorReady")
    assert (cond["status"], cond["reason"]) == ("False", "CrashLoopBackOff")
    assert "exit code 3" in cond["message"]
    assert f"the previous ReplicaSet {DEPLOYMENT}-old keeps serving" in cond["message"]
    # one Warning event naming the cause, and not again when the status already says it
    assert [e[1] for e in plan.events if e[0] == "Warning"] == ["CrashLoopBackOff"]
    again = _plan({**_isvc(), "status": plan.status}, [live],
                  raw_replica_sets={DEPLOYMENT: (rs, old_rs)},
                  raw_pods={DEPLOYMENT: (old_pull, crash)})
    assert again.events == ()


def test_oom_storage_initializer_and_unschedulable() -> None:
    first = _plan(_isvc(), [])
    live = _live(first)
    cases = {
        "OOMKilled": {"containerStatuses": [{"name": "kfserving-container", "lastState": {
            "terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]},
        "StorageInitializerFailed": {"initContainerStatuses": [{
            "name": "storage-initializer", "state": {"terminated": {"exitCode": 1}}}]},
        "Unschedulable": {"conditions": [_condition(
            "PodScheduled", "False", "Unschedulable", "0/1 nodes are available")]},
    }
    for reason, status in cases.items():
        plan = _plan(_isvc(), [live], raw_pods={DEPLOYMENT: (_pod("p", "abc", status),)})
        assert _cond(plan, "PredictorReady")["reason"] == reason


def test_rolling_out_and_complete() -> None:
    first = _plan(_isvc(), [])
    live = complete_deployment(_deployment(first), replicas=2)
    live["status"].update(replicas=3, updatedReplicas=1)
    cond = _cond(_plan(_isvc(), [live]), "PredictorReady")
    assert (cond["status"], cond["reason"]) == ("Unknown", "RollingOut")
    plan = _plan(_isvc(), [simulated(o) for o in first.apply])
    assert _cond(plan, "Ready")["status"] == "True"
    assert plan.events[0][1] == "InferenceServiceReady"


def test_unwanted_children_are_deleted() -> None:
    first = _plan(_isvc(), [])
    none = _isvc()
    none["metadata"]["annotations"]["serving.kubeflow.org/autoscalerClass"] = "none"
    plan = _plan(none, [simulated(o) for o in first.apply])
    assert [(d.kind, d.name) for d in plan.delete] == [("HorizontalPodAutoscaler", DEPLOYMENT)]
    assert _deployment(plan)["spec"]["replicas"] == 1
    gateway = _plan(_isvc(), [simulated(o) for o in first.apply], GATEWAY)
    assert [(d.api_version, d.kind) for d in gateway.delete] == [
        ("networking.k8s.io/v1", "Ingress")]


def _run(isvc: dict[str, Any], world: dict[Any, dict[str, Any]], ready: bool = True) -> Plan:
    """One reconcile: plan, apply (the cluster completes Deployments when ``ready``), delete,
    re-plan; the status is stored on ``isvc``."""
    plan = _plan(isvc, list(world.values()), GATEWAY)
    for obj in plan.apply:
        old = world.get(key(obj))
        if obj["kind"] == "Deployment":
            same = old is not None and old["metadata"]["annotations"] == obj["metadata"][
                "annotations"]
            if not same:
                world[key(obj)] = (complete_deployment(obj) if ready
                                   else starting_deployment(obj))
        elif obj["kind"] == "HTTPRoute":
            world[key(obj)] = accepted_route(obj)
        else:
            world[key(obj)] = copy.deepcopy(obj)
    for ref in plan.delete:
        world.pop((ref.kind, ref.name))
    plan = _plan(isvc, list(world.values()), GATEWAY)
    isvc["status"] = plan.status
    return plan


def _weights(plan: Plan) -> list[tuple[str, int | None]]:
    route = next(o for o in plan.apply if o["kind"] == "HTTPRoute"
                 and o["metadata"]["name"] == "model")
    return [(b["name"], b.get("weight")) for b in route["spec"]["rules"][0]["backendRefs"]]


def test_gateway_canary_promote_and_rollback() -> None:
    world: dict[Any, dict[str, Any]] = {}
    isvc = _isvc()
    first = _run(isvc, world)
    r1 = first.status["components"]["predictor"]["latestRolledoutRevision"]
    assert _weights(first) == [(DEPLOYMENT, None)]

    # A new spec with a 20 % canary: the previous revision moves to "-prev", and the new one
    # gets no traffic until its Deployment is complete.
    isvc["spec"]["predictor"].update(canaryTrafficPercent=20, minReplicas=2)
    isvc["spec"]["predictor"]["sklearn"]["storageUri"] = "gs://bucket/model-2"
    isvc["metadata"]["generation"] = 2
    waiting = _run(isvc, world, ready=False)
    prev = f"{DEPLOYMENT}-prev"
    assert _weights(waiting) == [(DEPLOYMENT, 0), (prev, 100)]
    prev_labels = world[("Deployment", prev)]["spec"]["template"]["metadata"]["labels"]
    assert prev_labels["app"] == f"isvc.{prev}"
    uri = "internal.serving.kubeflow.org/storage-initializer-sourceuri"
    annotations = world[("Deployment", prev)]["spec"]["template"]["metadata"]["annotations"]
    assert annotations[uri] == "gs://bucket/model"  # the rolled-out revision's model
    assert world[("Deployment", prev)]["spec"]["replicas"] == 2
    status = waiting.status["components"]["predictor"]
    assert status["latestRolledoutRevision"] == r1
    assert status["latestCreatedRevision"] != r1

    world[("Deployment", DEPLOYMENT)] = complete_deployment(world[("Deployment", DEPLOYMENT)])
    split = _run(isvc, world)
    assert _weights(split) == [(DEPLOYMENT, 20), (prev, 80)]
    traffic = split.status["components"]["predictor"]["traffic"]
    assert [(t["revisionName"], t["percent"], t["latestRevision"]) for t in traffic] == [
        (status["latestCreatedRevision"], 20, True), (r1, 80, False)]
    assert _cond(split, "Ready")["status"] == "True"

    # Rollback: 0 % sends everything back to the previous revision.
    isvc["spec"]["predictor"]["canaryTrafficPercent"] = 0
    assert _weights(_run(isvc, world)) == [(DEPLOYMENT, 0), (prev, 100)]

    # Promote: all traffic to the new revision, which becomes the rolled-out one; the
    # previous Deployment and Service are deleted.
    del isvc["spec"]["predictor"]["canaryTrafficPercent"]
    promoted = _run(isvc, world)
    assert _weights(promoted) == [(DEPLOYMENT, None)]
    component = promoted.status["components"]["predictor"]
    assert component["latestRolledoutRevision"] == status["latestCreatedRevision"]
    assert component["previousRolledoutRevision"] == r1
    assert ("Deployment", prev) not in world and ("Service", prev) not in world


def test_cache_keeps_raw_children_by_kind_and_name() -> None:
    from kfserving_operator.operator.cache import ObjectCache

    first = _plan(_isvc(), [])
    cache = ObjectCache()
    for obj in first.apply:
        assert cache.put_child(simulated(obj)) == ("default", "model")
    children = cache.children(("default", "model"))
    assert set(children.raw) == {key(o) for o in first.apply}
    assert children.service is None  # the component's Service is not the ExternalName one
    for obj in first.apply:
        assert children.counterpart(obj) is not None
        cache.put_child(obj, deleted=True)
    assert cache.children(("default", "model")).is_empty()


def _service(plan: Plan) -> dict[str, Any]:
    return next(o for o in plan.apply if o["kind"] == "Service")


def _agent_in_pod(deployment: dict[str, Any]) -> dict[str, Any]:
    """The agent the pod webhook injects into a pod of ``deployment``'s template."""
    template = copy.deepcopy(deployment["spec"]["template"])
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {**template["metadata"], "name": "model-abc", "namespace": "default"},
           "spec": template["spec"]}
    result = mutate_pod(pod, DEFAULT, CredentialSources())
    return next(c for c in result.pod["spec"]["containers"] if c["name"] == "agent")


def test_agent_fronts_the_model_server_in_raw_mode() -> None:
    """Service -> agent on 9081 -> model server on its port; readiness on the model server."""
    plan = _plan(_isvc(logger={"mode": "all"}), [])
    model = _deployment(plan)["spec"]["template"]["spec"]["containers"][0]
    assert "ports" not in model  # 9081 is the agent's, not the model server's
    assert model["readinessProbe"] == {"tcpSocket": {"port": 8080}}
    assert _service(plan)["spec"]["ports"][0]["targetPort"] == 9081
    agent = _agent_in_pod(_deployment(plan))
    assert agent["args"][-2:] == ["--component-port", "8080"]
    assert agent["ports"][0]["containerPort"] == 9081
    assert {"name": "SERVING_READINESS_PROBE",
            "value": '{"tcpSocket":{"host":"127.0.0.1","port":8080}}'} in agent["env"]


def test_agent_with_a_custom_model_port_and_without_agent() -> None:
    custom = {"containers": [{"name": "kfserving-container", "image": "mine",
                              "ports": [{"containerPort": 8500}]}],
              "batcher": {"maxBatchSize": 8}}
    isvc = _isvc()
    isvc["spec"]["predictor"] = custom
    plan = _plan(isvc, [])
    model = _deployment(plan)["spec"]["template"]["spec"]["containers"][0]
    assert model["readinessProbe"] == {"tcpSocket": {"port": 8500}}
    assert _service(plan)["spec"]["ports"][0]["targetPort"] == 9081
    assert _agent_in_pod(_deployment(plan))["args"][-2:] == ["--component-port", "8500"]
    # No logger or batcher: the Service goes straight to the model server.
    assert _service(_plan(_isvc(), []))["spec"]["ports"][0]["targetPort"] == 8080
