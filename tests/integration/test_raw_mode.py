"""Raw deployment mode on a real kube-apiserver and kube-controller-manager, with no Knative
and no Istio CRD installed (a control plane of this module's own).

What needs pods to run (Available Deployments, a canary's weights moving) is in
``tests/e2e/test_raw_lane.py``; here the Deployments, ReplicaSets and HPAs are the real
controllers', the pods stay Pending (there is no node), and the Gateway API CRDs are the
real ones from the ``sigs.k8s.io/gateway-api`` module, installed while the operator runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.cluster.gateway_api import gateway_api_crds
from kfserving_operator.cluster.localplane import project_root
from tests.integration.test_reconcile import condition, get_or_none, isvc_status, sklearn_isvc
from tests.support.cluster import (
    DEV_CRDS,
    Cluster,
    KubectlError,
    bare_local_cluster,
    wait_established,
    wait_for,
)
from tests.support.knative import KnativeStandIn
from tests.support.operator import OperatorProcess, run_operator

MODE = "serving.kubeflow.org/deploymentMode"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, OperatorProcess]]:
    tmp = tmp_path_factory.mktemp("raw")
    # reads audited too: the tests count the operator's GETs and LISTs
    with bare_local_cluster(tmp / "plane", audit_reads=True) as cluster, \
            run_operator(cluster, tmp) as operator:
        yield cluster, operator


@pytest.fixture
def cluster(plane: tuple[Cluster, OperatorProcess]) -> Cluster:
    return plane[0]


@pytest.fixture
def operator(plane: tuple[Cluster, OperatorProcess]) -> OperatorProcess:
    return plane[1]


_COUNT = iter(range(1000))


@pytest.fixture
def ns(cluster: Cluster) -> str:
    name = f"raw-{next(_COUNT)}"
    cluster.kubectl("create", "namespace", name)
    return name


def raw_isvc(name: str, **predictor: Any) -> dict[str, Any]:
    obj = sklearn_isvc(name, **predictor)
    obj["metadata"]["annotations"] = {MODE: "RawDeployment"}
    return obj


def set_config(cluster: Cluster, mode: str = "Serverless", **ingress: Any) -> None:
    """The operator's ConfigMap: the defaults, with ``ingress`` keys and the default mode."""
    config = OperatorConfig.model_validate(
        {"ingress": {**OperatorConfig().ingress.model_dump(by_alias=True), **ingress},
         "deploy": {"defaultDeploymentMode": mode}})
    cluster.apply_yaml({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "inferenceservice-config",
                                     "namespace": "kfserving-system"},
                        "data": config.to_configmap_data()})


def wait_status(cluster: Cluster, ns: str, name: str, type_: str, **wanted: str) -> dict[
        str, Any]:
    def check() -> dict[str, Any] | None:
        status = isvc_status(cluster, ns, name)
        found = condition(status, type_)
        return status if all(found.get(k) == v for k, v in wanted.items()) else None

    result: dict[str, Any] = wait_for(check, timeout=60, message=f"{name} {type_} {wanted}")
    return result


def test_children_without_knative_or_istio(cluster: Cluster, operator: OperatorProcess,
                                           ns: str) -> None:
    cluster.apply_yaml(raw_isvc("iris", minReplicas=2, maxReplicas=4), ns)
    name = "iris-predictor-default"
    deployment = wait_for(lambda: get_or_none(cluster, "deployment", name, "-n", ns), 30,
                          message="the Deployment")
    service = cluster.get_json("service", name, "-n", ns)
    hpa = cluster.get_json("hpa.v2.autoscaling", name, "-n", ns)
    ingress = cluster.get_json("ingress", "iris", "-n", ns)
    isvc = cluster.get_json("isvc", "iris", "-n", ns)
    for child in (deployment, service, hpa, ingress):
        owner = child["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "InferenceService", isvc["metadata"]["uid"], True)
        assert child["metadata"]["labels"]["serving.kubeflow.org/inferenceservice"] == "iris"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector == {"app": f"isvc.{name}"} == service["spec"]["selector"]
    # the HPA owns the replica count: our apply leaves it out
    managed = cluster.get_json("deployment", name, "-n", ns, "--show-managed-fields")
    ours = [m for m in managed["metadata"]["managedFields"] if m["manager"] == "kfserving-operator"]
    assert ours and all("f:replicas" not in m["fieldsV1"]["f:spec"] for m in ours)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    assert hpa["spec"]["scaleTargetRef"]["name"] == name
    assert service["spec"]["ports"][0]["port"] == 80
    rules = ingress["spec"]["rules"]
    assert rules[0]["host"] == f"iris-{ns}.example.com"
    # the real deployment and HPA controllers act on them: a ReplicaSet, pods (Pending)
    wait_for(lambda: json.loads(cluster.kubectl(
        "get", "replicasets", "-n", ns, "-l", f"app=isvc.{name}", "-o", "json"))["items"],
        30, message="the ReplicaSet")
    status = wait_status(cluster, ns, "iris", "PredictorReady", status="Unknown",
                         reason="MinimumReplicasUnavailable")
    assert status["deploymentMode"] == "RawDeployment"
    assert status["observedGeneration"] == isvc["metadata"]["generation"]
    assert status["url"] == f"http://iris-{ns}.example.com"
    assert status["address"]["url"] == (
        f"http://{name}.{ns}.svc.cluster.local/v1/models/iris:predict")
    assert condition(status, "IngressReady")["status"] == "True"
    # No Knative Service: the API is not even served here.
    assert cluster.kubectl("get", "services.serving.knative.dev", "-n", ns,
                           check=False) == ""
    # printer columns are the same
    table = cluster.kubectl("get", "isvc", "iris", "-n", ns)
    assert table.split()[:3] == ["NAME", "URL", "READY"]
    assert "MinimumReplicasUnavailable" in table


def test_nothing_changed_means_no_writes(cluster: Cluster, operator: OperatorProcess,
                                         ns: str) -> None:
    cluster.apply_yaml(raw_isvc("quiet"), ns)
    wait_status(cluster, ns, "quiet", "PredictorReady", reason="MinimumReplicasUnavailable")
    time.sleep(2)
    offset = operator.audit_offset()
    time.sleep(12)
    assert operator.writes_since(offset, ns) == []
    operator.restart()
    time.sleep(5)
    assert operator.writes_since(offset, ns) == []
    # an edit of a field we own is repaired
    cluster.kubectl("patch", "hpa.v2.autoscaling", "quiet-predictor-default", "-n", ns,
                    "--type=merge", "-p", '{"spec": {"maxReplicas": 7}}')
    wait_for(lambda: cluster.get_json("hpa.v2.autoscaling", "quiet-predictor-default", "-n",
                                      ns)["spec"]["maxReplicas"] == 1, 30,
             message="the HPA repaired")


def _pod_of(cluster: Cluster, ns: str, deployment: str) -> dict[str, Any]:
    pods: list[dict[str, Any]] = wait_for(lambda: json.loads(cluster.kubectl(
        "get", "pods", "-n", ns, "-l", f"app=isvc.{deployment}", "-o", "json"))["items"],
        60, message="the pod")
    return pods[0]


def _pod_reads(events: list[dict[str, Any]]) -> list[str]:
    """The reads of pods, ReplicaSets and HTTPRoutes among audit events, as verb resource."""
    return [f"{e['verb']} {e['objectRef'].get('resource')}" for e in events
            if e.get("objectRef", {}).get("resource") in ("pods", "replicasets", "httproutes")]


def test_pending_pods_cost_no_reads(cluster: Cluster, operator: OperatorProcess,
                                    ns: str) -> None:
    """A raw InferenceService whose pod stays Pending (no node here) is steady state: the
    operator reads no pod, ReplicaSet or (Gateway API not installed) HTTPRoute while it
    waits; it hears of them through its watches."""
    cluster.apply_yaml(raw_isvc("pending"), ns)
    # It did its work: the Deployment's state is in the status, and its pod exists.
    wait_status(cluster, ns, "pending", "PredictorReady", status="Unknown",
                reason="MinimumReplicasUnavailable")
    _pod_of(cluster, ns, "pending-predictor-default")
    gateway_api = cluster.kubectl("get", "crd", "httproutes.gateway.networking.k8s.io",
                                  "--ignore-not-found")
    time.sleep(2)
    offset = operator.audit_offset()
    # longer than the 10 s re-read of incomplete Deployments and the 5 s HTTPRoute poll
    # this replaced, twice over
    time.sleep(22)
    reads = _pod_reads(operator.reads_since(offset))
    if gateway_api:  # installed by another test of this module: its watch runs, no LIST
        assert "list httproutes" not in reads
    assert reads == []
    # ... and it is alive: a change is still reconciled (the HPA's maxReplicas).
    cluster.kubectl("patch", "isvc", "pending", "-n", ns, "--type=merge", "-p",
                    '{"spec": {"predictor": {"maxReplicas": 3}}}')
    wait_for(lambda: cluster.get_json("hpa.v2.autoscaling", "pending-predictor-default",
                                      "-n", ns)["spec"]["maxReplicas"] == 3, 30,
             message="the HPA updated")
    assert _pod_reads(operator.reads_since(offset)) == []


def _set_pod_status(cluster: Cluster, ns: str, pod: dict[str, Any],
                    state: dict[str, Any], restarts: int = 0,
                    last_state: dict[str, Any] | None = None) -> None:
    """What a kubelet would report: scheduled, the model server in ``state``."""
    now = "2026-01-01T00:00:00Z"
    container = pod["spec"]["containers"][0]
    status = {"phase": "Pending",
              "conditions": [{"type": "PodScheduled", "status": "True",
                              "lastTransitionTime": now}],
              "containerStatuses": [{"name": container["name"], "image": container["image"],
                                     "imageID": "", "ready": False, "started": False,
                                     "restartCount": restarts, "state": state,
                                     "lastState": last_state or {}}]}
    cluster.kubectl("patch", "pod", pod["metadata"]["name"], "-n", ns, "--subresource=status",
                    "--type=merge", "-p", json.dumps({"status": status}))


def test_pod_state_change_shows_within_seconds(cluster: Cluster, operator: OperatorProcess,
                                               ns: str) -> None:
    """A pod that starts failing changes nothing the Deployment says: its own event wakes
    the InferenceService, so the cause is in the status within seconds, each time."""
    cluster.apply_yaml(raw_isvc("flaky"), ns)
    wait_status(cluster, ns, "flaky", "PredictorReady", status="Unknown",
                reason="MinimumReplicasUnavailable")
    name = "flaky-predictor-default"
    pod = _pod_of(cluster, ns, name)
    _set_pod_status(cluster, ns, pod, {"waiting": {
        "reason": "ImagePullBackOff", "message": "Back-off pulling image"}})
    started = time.monotonic()
    status = wait_for(lambda: _ready_reason(cluster, ns, "flaky", "ImagePullBackOff"), 5,
                      interval=0.1, message="the image pull in the status")
    assert time.monotonic() - started < 5
    assert "cannot be pulled" in condition(status, "PredictorReady")["message"]
    _set_pod_status(cluster, ns, pod, {"waiting": {"reason": "CrashLoopBackOff"}},
                    restarts=3, last_state={"terminated": {
                        "reason": "Error", "exitCode": 3, "startedAt": "2026-01-01T00:00:00Z",
                        "finishedAt": "2026-01-01T00:00:01Z"}})
    status = wait_for(lambda: _ready_reason(cluster, ns, "flaky", "CrashLoopBackOff"), 5,
                      interval=0.1, message="the crash loop in the status")
    assert "exit code 3" in condition(status, "PredictorReady")["message"]
    # the pod going away (the ReplicaSet makes another, Pending) is news too
    cluster.kubectl("delete", "pod", pod["metadata"]["name"], "-n", ns, "--wait=false")
    wait_status(cluster, ns, "flaky", "PredictorReady", status="Unknown")


def _ready_reason(cluster: Cluster, ns: str, name: str, reason: str) -> dict[str, Any] | None:
    status = isvc_status(cluster, ns, name)
    return status if condition(status, "PredictorReady").get("reason") == reason else None


def test_replica_failure_from_the_live_deployment(cluster: Cluster, operator: OperatorProcess,
                                                  ns: str) -> None:
    cluster.apply_yaml({"apiVersion": "v1", "kind": "ResourceQuota",
                        "metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}, ns)
    cluster.apply_yaml(raw_isvc("quota"), ns)
    status = wait_status(cluster, ns, "quota", "PredictorReady", status="False",
                         reason="ReplicaFailure")
    message = condition(status, "PredictorReady")["message"]
    assert "exceeded quota" in message and "quota-predictor-default" in message
    assert condition(status, "Ready")["reason"] == "ReplicaFailure"


def _refusal(cluster: Cluster, obj: dict[str, Any], ns: str) -> str:
    with pytest.raises(KubectlError) as refused:
        cluster.apply_yaml(obj, ns)
    return str(refused.value)


def test_admission_refusals(cluster: Cluster, operator: OperatorProcess, ns: str) -> None:
    message = _refusal(cluster, raw_isvc("zero", minReplicas=0), ns)
    assert "spec.predictor.minReplicas" in message and "cannot scale to zero" in message
    message = _refusal(cluster, raw_isvc("canary", canaryTrafficPercent=10), ns)
    assert "spec.predictor.canaryTrafficPercent" in message and "Ingress" in message
    cluster.apply_yaml(sklearn_isvc("serverless"), ns)
    wait_for(lambda: isvc_status(cluster, ns, "serverless").get("conditions"), 30,
             message="a status")
    changed = sklearn_isvc("serverless")
    changed["metadata"]["annotations"] = {MODE: "Standard"}
    message = _refusal(cluster, changed, ns)
    assert f"metadata.annotations[{MODE}]" in message and "cannot change" in message


def test_gateway_api_and_knative_installed_later(cluster: Cluster, operator: OperatorProcess,
                                                 ns: str) -> None:
    cluster.apply_yaml(raw_isvc("routed", timeout=30), ns)
    wait_for(lambda: get_or_none(cluster, "ingress", "routed", "-n", ns), 30,
             message="the Ingress")
    set_config(cluster, enableGatewayApi=True, kserveIngressGateway="gateways/public")
    status = wait_status(cluster, ns, "routed", "IngressReady", status="False",
                         reason="GatewayAPINotInstalled")
    assert "Gateway API" in condition(status, "IngressReady")["message"]
    try:
        # the real CRDs, CEL validation included, from the Go module
        for crd in gateway_api_crds(project_root()):
            cluster.apply_yaml(crd)
        wait_established(cluster, "httproutes.gateway.networking.k8s.io")
        route = wait_for(lambda: get_or_none(cluster, "httproute", "routed", "-n", ns), 60,
                         message="the HTTPRoute, without an operator restart")
        wait_for(lambda: get_or_none(cluster, "ingress", "routed", "-n", ns) is None, 30,
                 message="the Ingress deleted")
        component = cluster.get_json("httproute", "routed-predictor", "-n", ns)
        assert component["spec"]["rules"][0]["timeouts"] == {"request": "30s"}
        assert route["spec"]["rules"][0]["matches"][0]["path"] == {
            "type": "PathPrefix", "value": "/"}
        # the predictor's own timeout; without one a route carries none (golden files)
        assert route["spec"]["rules"][0]["timeouts"] == {"request": "30s"}
        assert route["spec"]["parentRefs"][0]["name"] == "public"
        wait_status(cluster, ns, "routed", "IngressReady", status="Unknown",
                    reason="HTTPRouteNotAccepted")
        # the Gateway's controller (this test) accepts one route, refuses the other
        for name, accepted in (("routed", "True"), ("routed-predictor", "False")):
            live = cluster.get_json("httproute", name, "-n", ns)
            live["status"] = {"parents": [{
                "parentRef": live["spec"]["parentRefs"][0],
                "controllerName": "example.com/gateway",
                "conditions": [{"type": "Accepted", "status": accepted,
                                "reason": "Accepted" if accepted == "True" else "NotAllowed",
                                "message": "by the test", "observedGeneration": 1,
                                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}]}
            cluster.kubectl("replace", "--subresource=status", "-f", "-",
                            input=json.dumps(live))
        status = wait_status(cluster, ns, "routed", "IngressReady", status="False")
        assert "routed-predictor" in condition(status, "IngressReady")["message"]

        # Knative's CRD appears later too: a Serverless InferenceService is served at once
        for path in sorted(DEV_CRDS.glob("*.yaml")):
            cluster.kubectl("apply", "-f", str(path))
        wait_established(cluster, "services.serving.knative.dev")
        cluster.apply_yaml(sklearn_isvc("knative"), ns)
        KnativeStandIn(cluster, ns).wait_for_ksvc("knative-predictor-default", timeout=60)
        assert operator.process.poll() is None and "Traceback" not in operator.log()
    finally:
        set_config(cluster)


def test_gateway_api_crds_come_from_the_module() -> None:
    crds = gateway_api_crds(project_root())
    route = next(c for c in crds if c["metadata"]["name"] == "httproutes.gateway.networking.k8s.io")
    served = [v["name"] for v in route["spec"]["versions"] if v.get("served")]
    assert "v1" in served
    assert "x-kubernetes-validations" in yaml.safe_dump(route)
    assert route["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] == (
        "v1.2.1")
    assert Path(project_root() / "hack" / "gatewayapi" / "go.mod").read_text().count(
        "sigs.k8s.io/gateway-api v1.2.1") == 1


def _stamped_mode(cluster: Cluster, ns: str) -> str | None:
    """The mode the defaulting webhook writes into a new InferenceService (server dry run)."""
    obj = sklearn_isvc("probe")
    out = cluster.kubectl("create", "--dry-run=server", "-o", "json", "-n", ns, "-f", "-",
                          input=json.dumps(obj))
    mode: str | None = (json.loads(out)["metadata"].get("annotations") or {}).get(MODE)
    return mode


def wait_default_mode(cluster: Cluster, mode: str, ns: str = "default") -> None:
    """Wait until admission stamps ``mode``: the operator has read the config's default.
    Creating an InferenceService without the annotation before that fixes the old mode."""
    wait_for(lambda: _stamped_mode(cluster, ns) == mode, 30,
             message=f"the operator to read the {mode} default")


def test_admission_stamps_the_default_mode(cluster: Cluster, operator: OperatorProcess,
                                           ns: str) -> None:
    """Created without the annotation, an InferenceService gets the config's default mode
    written into it; a later change of the default moves none of them."""
    set_config(cluster, "RawDeployment")
    try:
        wait_default_mode(cluster, "RawDeployment", ns)
        cluster.apply_yaml(sklearn_isvc("stamped"), ns)
        stored = cluster.get_json("isvc", "stamped", "-n", ns)
        assert stored["metadata"]["annotations"][MODE] == "RawDeployment"
        wait_for(lambda: get_or_none(cluster, "deployment", "stamped-predictor-default", "-n",
                                     ns), 30, message="the Deployment")
        set_config(cluster)  # Serverless
        wait_default_mode(cluster, "Serverless", ns)
        # An update of the stamped one is admitted and it stays raw; a given mode is kept.
        cluster.kubectl("patch", "isvc", "stamped", "-n", ns, "--type=merge", "-p",
                        '{"spec": {"predictor": {"maxReplicas": 3}}}')
        wait_for(lambda: cluster.get_json("hpa.v2.autoscaling", "stamped-predictor-default",
                                          "-n", ns)["spec"]["maxReplicas"] == 3, 30,
                 message="the HPA updated")
        assert cluster.get_json("isvc", "stamped", "-n", ns)["metadata"]["annotations"][
            MODE] == "RawDeployment"
        assert isvc_status(cluster, ns, "stamped")["deploymentMode"] == "RawDeployment"
        cluster.apply_yaml(raw_isvc("given"), ns)
        assert cluster.get_json("isvc", "given", "-n", ns)["metadata"]["annotations"][
            MODE] == "RawDeployment"
    finally:
        set_config(cluster)
        wait_default_mode(cluster, "Serverless", ns)


def test_agent_in_a_raw_pod(cluster: Cluster, operator: OperatorProcess, ns: str) -> None:
    """A logger on a raw InferenceService: the Service sends to the agent's port, and the pod
    webhook gives the agent (in the pod the real ReplicaSet controller creates) the model
    server's port and readiness probe, which queue-proxy's environment holds in Serverless."""
    cluster.apply_yaml(raw_isvc("logged", logger={"mode": "all", "url": "http://sink"}), ns)
    name = "logged-predictor-default"
    pods = wait_for(lambda: json.loads(cluster.kubectl(
        "get", "pods", "-n", ns, "-l", f"app=isvc.{name}", "-o", "json"))["items"],
        60, message="the pod")
    containers = {c["name"]: c for c in pods[0]["spec"]["containers"]}
    model, agent = containers["kfserving-container"], containers["agent"]
    assert model["readinessProbe"]["tcpSocket"]["port"] == 8080
    assert "ports" not in model
    args = agent["args"]
    assert args[args.index("--component-port") + 1] == "8080"
    assert args[args.index("--log-url") + 1] == "http://sink"
    env = {e["name"]: e.get("value") for e in agent.get("env", [])}
    assert json.loads(env["SERVING_READINESS_PROBE"])["tcpSocket"] == {
        "host": "127.0.0.1", "port": 8080}
    assert [p["containerPort"] for p in agent["ports"]] == [9081]
    service = cluster.get_json("service", name, "-n", ns)
    assert service["spec"]["ports"][0]["targetPort"] == 9081
