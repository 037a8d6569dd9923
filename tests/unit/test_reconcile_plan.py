"""plan_reconcile: apply order, deletes, invalid specs, determinism, events, URLs.

The helpers at the top (``isvc``, ``ksvc``, ``observed``, ``step``) are shared with the other
``test_reconcile_*`` modules.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from kfserving_operator.api.config import IngressConfig, OperatorConfig
from kfserving_operator.reconcile import ChildRef, Observed, Plan, plan_reconcile

CONFIG = OperatorConfig()
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
UID = "3f2a3c3e-6a55-4a0e-9c54-3b0d8a1f4f11"


def isvc(
    name: str = "iris",
    namespace: str = "default",
    *,
    predictor: dict[str, Any] | None = None,
    transformer: dict[str, Any] | None = None,
    explainer: dict[str, Any] | None = None,
    generation: int = 1,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A raw InferenceService as the API server returns it."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": UID,
        "generation": generation,
    }
    if labels:
        metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = annotations
    spec: dict[str, Any] = {
        "predictor": predictor
        if predictor is not None
        else {"sklearn": {"storageUri": "gs://bucket/iris"}}
    }
    if transformer is not None:
        spec["transformer"] = transformer
    if explainer is not None:
        spec["explainer"] = explainer
    obj: dict[str, Any] = {
        "apiVersion": "serving.kubeflow.org/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": spec,
    }
    if status is not None:
        obj["status"] = status
    return obj


def ksvc(
    isvc_name: str,
    component: str = "predictor",
    *,
    ready: str | None = "True",
    reason: str | None = None,
    message: str | None = None,
    routes: str | None = None,
    configurations: str | None = None,
    latest_ready: int | None = 1,
    latest_created: int | None = None,
    traffic: list[dict[str, Any]] | None = None,
    generation: int = 1,
    observed_generation: int | None = None,
    namespace: str = "default",
    domain: str = "example.com",
) -> dict[str, Any]:
    """An observed Knative Service with a status as Knative writes it.

    Revisions are given by number; ``traffic`` entries may use ``rev: n`` for revisionName.
    Default traffic: the latest ready revision at 100%.
    """
    name = f"{isvc_name}-{component}-default"

    def rev(n: int) -> str:
        return f"{name}-{n:05d}"

    status: dict[str, Any] = {
        "observedGeneration": generation if observed_generation is None else observed_generation
    }
    conditions = []
    for type_, value in (
        ("ConfigurationsReady", configurations if configurations is not None else ready),
        ("Ready", ready),
        ("RoutesReady", routes if routes is not None else ready),
    ):
        if value is None:
            continue
        cond: dict[str, Any] = {"type": type_, "status": value}
        if value != "True":
            if reason:
                cond["reason"] = reason
            if message:
                cond["message"] = message
        conditions.append(cond)
    if conditions:
        status["conditions"] = conditions
    if latest_ready is not None:
        status["latestReadyRevisionName"] = rev(latest_ready)
    created = latest_created if latest_created is not None else latest_ready
    if created is not None:
        status["latestCreatedRevisionName"] = rev(created)
    if traffic is None and latest_ready is not None:
        traffic = [{"latestRevision": True, "percent": 100, "rev": latest_ready}]
    if traffic is not None:
        entries = []
        for entry in traffic:
            item = {k: v for k, v in entry.items() if k != "rev"}
            if "rev" in entry:
                item["revisionName"] = rev(entry["rev"])
            entries.append(item)
        status["traffic"] = entries
    if ready == "True" or latest_ready is not None:
        status["url"] = f"http://{name}.{namespace}.{domain}"
        status["address"] = {"url": f"http://{name}.{namespace}.svc.cluster.local"}
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "generation": generation},
        "status": status,
    }


def observed(**ksvcs: dict[str, Any]) -> Observed:
    return Observed(ksvcs=ksvcs)


def step(obj: dict[str, Any], seen: Observed, now: datetime = T0) -> Plan:
    """Plan, then store the new status on ``obj`` (as the shell would write it)."""
    plan = plan_reconcile(copy.deepcopy(obj), CONFIG, seen, now)
    obj["status"] = copy.deepcopy(plan.status)
    return plan


def conditions(plan: Plan) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in plan.status["conditions"]}


def kinds(plan: Plan) -> list[str]:
    return [f"{o['kind']}/{o['metadata']['name']}" for o in plan.apply]


# ------------------------------------------------------------------------------------------


def test_first_reconcile_creates_ksvc_and_service_but_no_virtual_service() -> None:
    plan = plan_reconcile(isvc(), CONFIG, observed(), T0)
    assert kinds(plan) == ["Service/iris-predictor-default", "Service/iris"]
    assert plan.delete == ()
    assert plan.status["components"] == {"predictor": {}}
    assert plan.status["observedGeneration"] == 1
    assert "url" not in plan.status
    assert plan.events == ()


def test_apply_order_with_all_components() -> None:
    obj = isvc(
        transformer={"containers": [{"image": "t:1"}]},
        explainer={"alibi": {"type": "AnchorTabular"}},
    )
    seen = observed(
        predictor=ksvc("iris"), transformer=ksvc("iris", "transformer"),
        explainer=ksvc("iris", "explainer"),
    )  # fmt: skip
    plan = plan_reconcile(obj, CONFIG, seen, T0)
    assert kinds(plan) == [
        "Service/iris-predictor-default",
        "Service/iris-transformer-default",
        "Service/iris-explainer-default",
        "Service/iris",
        "VirtualService/iris",
    ]
    for child in plan.apply:
        assert child["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "serving.kubeflow.org/v1beta1",
                "kind": "InferenceService",
                "name": "iris",
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_ready_world_gives_ready_status_urls_and_event() -> None:
    obj = isvc()
    plan = step(obj, observed(predictor=ksvc("iris")))
    assert plan.status["url"] == "http://iris.default.example.com"
    assert plan.status["address"] == {
        "url": "http://iris.default.svc.cluster.local/v1/models/iris:predict"
    }
    assert conditions(plan)["Ready"]["status"] == "True"
    assert conditions(plan)["IngressReady"]["status"] == "True"
    assert plan.events == (("Normal", "InferenceServiceReady", "InferenceService [iris] is Ready"),)
    predictor = plan.status["components"]["predictor"]
    assert predictor["url"] == "http://iris-predictor-default.default.example.com"
    assert predictor["address"] == {
        "url": "http://iris-predictor-default.default.svc.cluster.local"
    }


def test_same_inputs_give_identical_status_and_no_events() -> None:
    obj = isvc(transformer={"containers": [{"image": "t:1"}]})
    seen = observed(predictor=ksvc("iris"), transformer=ksvc("iris", "transformer"))
    first = step(obj, seen, T0)
    again = plan_reconcile(copy.deepcopy(obj), CONFIG, seen, T0 + timedelta(hours=1))
    assert again.status == first.status
    assert again.apply == first.apply
    assert again.events == ()
    assert plan_reconcile(copy.deepcopy(obj), CONFIG, seen, T0) == again


def test_unready_world_is_stable_too() -> None:
    obj = isvc()
    seen = observed(predictor=ksvc("iris", ready="Unknown", reason="Deploying", message="m"))
    first = step(obj, seen, T0)
    again = plan_reconcile(copy.deepcopy(obj), CONFIG, seen, T0 + timedelta(minutes=5))
    assert again.status == first.status
    assert again.events == ()


def test_removed_component_is_deleted_and_dropped_from_status() -> None:
    obj = isvc(
        transformer={"containers": [{"image": "t:1"}]},
        explainer={"alibi": {"type": "AnchorTabular"}},
    )
    everything = observed(
        predictor=ksvc("iris"), transformer=ksvc("iris", "transformer"),
        explainer=ksvc("iris", "explainer"),
    )  # fmt: skip
    step(obj, everything)
    del obj["spec"]["transformer"]
    del obj["spec"]["explainer"]
    obj["metadata"]["generation"] = 2
    plan = step(obj, everything)
    assert plan.delete == (
        ChildRef("serving.knative.dev/v1", "Service", "iris-explainer-default", "default"),
        ChildRef("serving.knative.dev/v1", "Service", "iris-transformer-default", "default"),
    )
    assert set(plan.status["components"]) == {"predictor"}
    types = set(conditions(plan))
    assert not any(t.startswith(("Transformer", "Explainer")) for t in types)
    assert kinds(plan) == ["Service/iris-predictor-default", "Service/iris", "VirtualService/iris"]
    vs = plan.apply[-1]
    assert len(vs["spec"]["http"]) == 1
    assert vs["spec"]["http"][0]["headers"]["request"]["set"]["Host"] == (
        "iris-predictor-default.default.svc.cluster.local"
    )


def test_invalid_spec_gives_invalid_spec_condition_and_touches_nothing() -> None:
    obj = isvc(
        predictor={
            "sklearn": {"storageUri": "gs://a/b"},
            "xgboost": {"storageUri": "gs://a/b"},
            "minReplicas": -1,
        }
    )
    plan = plan_reconcile(obj, CONFIG, observed(predictor=ksvc("iris")), T0)
    assert plan.apply == () and plan.delete == ()
    ready = conditions(plan)["Ready"]
    assert ready["status"] == "False"
    assert ready["reason"] == "InvalidSpec"
    assert "spec.predictor: exactly one of" in ready["message"]
    assert "spec.predictor.minReplicas" in ready["message"]
    assert plan.status["observedGeneration"] == 1


def test_unparseable_spec_is_invalid_spec_too() -> None:
    obj = isvc(predictor={"sklearn": {"storageUri": "gs://a/b", "bogusField": 1}})
    plan = plan_reconcile(obj, CONFIG, observed(), T0)
    assert plan.apply == ()
    ready = conditions(plan)["Ready"]
    assert ready["reason"] == "InvalidSpec"
    assert "bogusField" in ready["message"]


def test_invalid_spec_after_ready_keeps_status_and_warns() -> None:
    obj = isvc()
    step(obj, observed(predictor=ksvc("iris")))
    obj["spec"]["predictor"]["minReplicas"] = 5
    obj["spec"]["predictor"]["maxReplicas"] = 2
    obj["metadata"]["generation"] = 2
    plan = step(obj, observed(predictor=ksvc("iris")), T0 + timedelta(minutes=1))
    assert plan.apply == ()
    assert plan.status["url"] == "http://iris.default.example.com"
    assert plan.status["observedGeneration"] == 2
    assert conditions(plan)["PredictorReady"]["status"] == "True"
    assert conditions(plan)["Ready"]["reason"] == "InvalidSpec"
    assert conditions(plan)["Ready"]["lastTransitionTime"] == "2024-05-01T12:01:00Z"
    [(kind, reason, message), invalid] = plan.events
    assert (kind, reason) == ("Warning", "InferenceServiceNotReady")
    assert message.startswith("InferenceService [iris] is no longer Ready: ")
    assert "minReplicas" in message
    assert invalid[:2] == ("Warning", "InvalidSpec")
    # Posted once: the next reconcile of the same object is quiet.
    again = plan_reconcile(copy.deepcopy(obj), CONFIG, observed(), T0 + timedelta(minutes=2))
    assert again.events == ()
    assert again.status == plan.status


def test_garbage_input_never_raises() -> None:
    plan = plan_reconcile({"metadata": {"name": "x"}, "spec": "nope"}, CONFIG, observed(), T0)
    assert plan.apply == ()
    assert conditions(plan)["Ready"]["status"] == "False"
    plan = plan_reconcile({}, CONFIG, observed(), T0)
    assert conditions(plan)["Ready"]["reason"] == "InvalidSpec"


def test_unreadable_stored_status_is_rebuilt() -> None:
    obj = isvc(status={"conditions": [{"type": "Ready", "status": "Maybe"}], "url": "x"})
    plan = plan_reconcile(obj, CONFIG, observed(predictor=ksvc("iris")), T0)
    assert conditions(plan)["Ready"]["status"] == "True"


def test_deleting_isvc_plans_nothing() -> None:
    obj = isvc(status={"url": "http://iris.default.example.com"})
    obj["metadata"]["deletionTimestamp"] = "2024-05-01T12:00:00Z"
    plan = plan_reconcile(obj, CONFIG, observed(predictor=ksvc("iris")), T0)
    assert plan.apply == () and plan.delete == () and plan.events == ()
    assert plan.status == {"url": "http://iris.default.example.com"}


def test_defaulting_is_applied_before_rendering() -> None:
    plan = plan_reconcile(isvc(), CONFIG, observed(), T0)
    container = plan.apply[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "kfserving-container"
    assert container["image"] == "kserve/sklearnserver:v0.15.2"
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }


def test_host_comes_from_the_knative_url() -> None:
    obj = isvc(namespace="ml")
    seen = observed(predictor=ksvc("iris", namespace="ml", domain="models.corp.io"))
    seen.ksvcs["predictor"]["status"]["url"] = "https://iris-predictor-default.ml.models.corp.io"
    plan = plan_reconcile(obj, CONFIG, seen, T0)
    assert plan.status["url"] == "https://iris.ml.models.corp.io"
    vs = plan.apply[-1]
    assert vs["spec"]["hosts"] == ["iris.ml.svc.cluster.local", "iris.ml.models.corp.io"]


def test_host_falls_back_to_ingress_domain_and_scheme() -> None:
    config = OperatorConfig(
        ingress=IngressConfig(ingress_domain="corp.io", url_scheme="https", cluster_domain="c.l")
    )
    seen = observed(predictor=ksvc("iris"))
    seen.ksvcs["predictor"]["status"]["url"] = "weird"  # no scheme, no -predictor-default
    plan = plan_reconcile(isvc(), config, seen, T0)
    assert plan.status["url"] == "https://iris.default.corp.io"
    assert plan.status["address"]["url"] == "http://iris.default.svc.c.l/v1/models/iris:predict"
    route = plan.apply[-1]["spec"]["http"][0]
    assert route["match"][0]["authority"]["regex"] == (
        r"^iris\.default(\.svc(\.c\.l)?)?(?::\d{1,5})?$"
    )
    assert route["headers"]["request"]["set"]["Host"] == "iris-predictor-default.default.svc.c.l"


def test_transformer_is_the_entry_point() -> None:
    obj = isvc(transformer={"containers": [{"image": "t:1"}]})
    seen = observed(predictor=ksvc("iris"), transformer=ksvc("iris", "transformer"))
    plan = plan_reconcile(obj, CONFIG, seen, T0)
    assert plan.status["url"] == "http://iris.default.example.com"
    route = plan.apply[-1]["spec"]["http"][0]
    assert route["headers"]["request"]["set"]["Host"] == (
        "iris-transformer-default.default.svc.cluster.local"
    )


def test_cluster_local_has_no_external_host() -> None:
    obj = isvc(labels={"serving.knative.dev/visibility": "cluster-local"})
    seen = observed(predictor=ksvc("iris", domain="svc.cluster.local"))
    plan = plan_reconcile(obj, CONFIG, seen, T0)
    vs = plan.apply[-1]
    assert vs["spec"]["hosts"] == ["iris.default.svc.cluster.local"]
    assert vs["spec"]["gateways"] == ["knative-serving/knative-local-gateway"]
    assert plan.status["url"] == "http://iris.default.svc.cluster.local"
    ksvc_obj = plan.apply[0]
    assert ksvc_obj["metadata"]["labels"]["serving.knative.dev/visibility"] == "cluster-local"
    assert (
        "serving.knative.dev/visibility" not in ksvc_obj["spec"]["template"]["metadata"]["labels"]
    )


def test_v2_and_multi_model_addresses() -> None:
    seen = observed(predictor=ksvc("iris"))
    v2 = plan_reconcile(
        isvc(predictor={"sklearn": {"storageUri": "gs://a/b", "protocolVersion": "v2"}}),
        CONFIG, seen, T0,
    )  # fmt: skip
    assert v2.status["address"]["url"].endswith("/v2/models/iris/infer")
    mms = plan_reconcile(isvc(predictor={"xgboost": {}}), CONFIG, seen, T0)
    assert mms.status["address"]["url"] == "http://iris.default.svc.cluster.local"
    v2_env = [{"name": "PROTOCOL", "value": "v2"}]
    custom_isvc = isvc(predictor={"containers": [{"image": "x:1", "env": v2_env}]})
    custom = plan_reconcile(custom_isvc, CONFIG, seen, T0)
    assert custom.status["address"]["url"].endswith("/v2/models/iris/infer")


def test_status_traffic_entries_always_carry_latest_revision_and_percent() -> None:
    seen = observed(
        predictor=ksvc(
            "iris",
            traffic=[
                {"latestRevision": True, "percent": 100, "rev": 1},
                {"rev": 1, "tag": "prev", "url": "http://prev-iris-predictor-default.default"},
            ],
        )
    )
    plan = plan_reconcile(isvc(), CONFIG, seen, T0)
    traffic = plan.status["components"]["predictor"]["traffic"]
    assert traffic == [
        {"latestRevision": True, "percent": 100, "revisionName": "iris-predictor-default-00001"},
        {
            "latestRevision": False,
            "percent": 0,
            "revisionName": "iris-predictor-default-00001",
            "tag": "prev",
            "url": "http://prev-iris-predictor-default.default",
        },
    ]


def test_observed_ksvc_of_other_component_is_ignored_when_component_present() -> None:
    plan = plan_reconcile(isvc(), CONFIG, observed(predictor=ksvc("iris")), T0)
    assert plan.delete == ()
