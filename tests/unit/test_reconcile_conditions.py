"""Condition semantics: initialisation, mapping, aggregation, transition times, NotInstalled."""

from __future__ import annotations

import copy
from datetime import timedelta

from kfserving_operator.reconcile import Observed, plan_reconcile
from kfserving_operator.reconcile.conditions import (
    FALSE,
    TRUE,
    UNKNOWN,
    Cond,
    finalize_conditions,
    ready_condition,
)
from tests.unit.test_reconcile_plan import (
    CONFIG,
    T0,
    conditions,
    isvc,
    kinds,
    ksvc,
    observed,
    step,
)

ALL_TYPES = {
    "Ready",
    "IngressReady",
    "PredictorReady",
    "PredictorRouteReady",
    "PredictorConfigurationReady",
    "TransformerReady",
    "TransformerRouteReady",
    "TransformerConfigurationReady",
    "ExplainerReady",
    "ExplainerRoutesReady",
    "ExplainerConfigurationReady",
}
INFO_TYPES = {t for t in ALL_TYPES
              if t.endswith(("RouteReady", "RoutesReady", "ConfigurationReady"))}


def full_isvc() -> dict[str, object]:
    return isvc(
        transformer={"containers": [{"image": "t:1"}]},
        explainer={"alibi": {"type": "AnchorTabular"}},
    )


def test_first_reconcile_initialises_every_condition_unknown() -> None:
    plan = plan_reconcile(full_isvc(), CONFIG, observed(), T0)
    conds = conditions(plan)
    assert set(conds) == ALL_TYPES
    for type_, cond in conds.items():
        assert cond["status"] == "Unknown", type_
        assert cond["reason"] and cond["message"], type_
        assert cond["lastTransitionTime"] == "2024-05-01T12:00:00Z"
        assert cond.get("severity") == ("Info" if type_ in INFO_TYPES else None), type_
    assert conds["PredictorReady"]["reason"] == "KnativeServiceNotCreated"
    assert "default/iris-predictor-default" in conds["PredictorReady"]["message"]
    assert conds["IngressReady"]["reason"] == "Predictor ingress not created"
    assert conds["Ready"]["reason"] == "KnativeServiceNotCreated"


def test_conditions_are_sorted_by_type() -> None:
    plan = plan_reconcile(full_isvc(), CONFIG, observed(), T0)
    types = [c["type"] for c in plan.status["conditions"]]
    assert types == sorted(types)


def test_ksvc_without_status_is_initializing() -> None:
    bare = ksvc("iris", ready=None, latest_ready=None)
    bare["status"] = {}
    plan = plan_reconcile(isvc(), CONFIG, observed(predictor=bare), T0)
    cond = conditions(plan)["PredictorReady"]
    assert (cond["status"], cond["reason"]) == ("Unknown", "Initializing")


def test_route_and_configuration_are_mapped_the_right_way_round() -> None:
    seen = observed(
        predictor=ksvc(
            "iris", ready="False", routes="False", configurations="True",
            reason="IngressNotConfigured", message="Ingress has not yet been reconciled.",
        )
    )  # fmt: skip
    conds = conditions(plan_reconcile(isvc(), CONFIG, seen, T0))
    assert conds["PredictorRouteReady"]["status"] == "False"
    assert conds["PredictorRouteReady"]["reason"] == "IngressNotConfigured"
    assert conds["PredictorConfigurationReady"]["status"] == "True"
    assert "reason" not in conds["PredictorConfigurationReady"]


def test_knative_false_without_reason_gets_one() -> None:
    seen = observed(predictor=ksvc("iris", ready="False"))
    conds = conditions(plan_reconcile(isvc(), CONFIG, seen, T0))
    for type_ in ("PredictorReady", "PredictorRouteReady", "Ready", "IngressReady"):
        assert conds[type_]["reason"] and conds[type_]["message"], type_


def test_transformer_counts_toward_ready() -> None:
    obj = isvc(transformer={"containers": [{"image": "t:1"}]})
    seen = observed(
        predictor=ksvc("iris"),
        transformer=ksvc("iris", "transformer", ready="Unknown", reason="Deploying",
                         message="Waiting for the transformer pods"),
    )  # fmt: skip
    plan = plan_reconcile(obj, CONFIG, seen, T0)
    conds = conditions(plan)
    assert conds["PredictorReady"]["status"] == "True"
    assert conds["TransformerReady"]["status"] == "Unknown"
    assert conds["IngressReady"]["status"] == "Unknown"
    assert conds["IngressReady"]["reason"] == "Transformer ingress not created"
    assert "transformer" in conds["IngressReady"]["message"]
    assert conds["Ready"]["status"] == "Unknown"
    assert conds["Ready"]["reason"] == "Deploying"
    assert "VirtualService" not in [o["kind"] for o in plan.apply]


def test_explainer_false_makes_ready_false() -> None:
    obj = isvc(explainer={"alibi": {"type": "AnchorTabular"}})
    seen = observed(
        predictor=ksvc("iris"),
        explainer=ksvc("iris", "explainer", ready="False", reason="RevisionFailed", message="x"),
    )
    conds = conditions(plan_reconcile(obj, CONFIG, seen, T0))
    assert conds["ExplainerReady"]["status"] == "False"
    assert conds["IngressReady"]["reason"] == "Explainer ingress not created"
    assert conds["Ready"]["status"] == "False"


def test_false_wins_over_unknown() -> None:
    dependents = [
        Cond("PredictorReady", UNKNOWN, "A", "a"),
        Cond("TransformerReady", FALSE, "B", "b"),
        Cond("IngressReady", UNKNOWN, "C", "c"),
    ]
    assert ready_condition(dependents) == Cond("Ready", FALSE, "B", "b")
    assert ready_condition([Cond("PredictorReady", TRUE)]) == Cond("Ready", TRUE)


def test_transition_time_kept_while_unchanged_and_moved_on_change() -> None:
    obj = isvc()
    waiting = observed(predictor=ksvc("iris", ready="Unknown", reason="Deploying", message="m"))
    step(obj, waiting, T0)
    later = T0 + timedelta(minutes=3)
    plan = step(obj, waiting, later)
    assert {c["lastTransitionTime"] for c in plan.status["conditions"]} == {"2024-05-01T12:00:00Z"}

    ready_at = T0 + timedelta(minutes=7)
    plan = step(obj, observed(predictor=ksvc("iris")), ready_at)
    times = {c["type"]: c["lastTransitionTime"] for c in plan.status["conditions"]}
    assert times["PredictorReady"] == "2024-05-01T12:07:00Z"
    assert times["Ready"] == "2024-05-01T12:07:00Z"

    # A message change alone is a change too.
    plan = step(
        obj, observed(predictor=ksvc("iris", ready="Unknown", reason="Deploying", message="n")),
        T0 + timedelta(minutes=9),
    )  # fmt: skip
    assert conditions(plan)["PredictorReady"]["lastTransitionTime"] == "2024-05-01T12:09:00Z"


def test_finalize_uses_rfc3339_z_and_drops_reason_of_true() -> None:
    result = finalize_conditions(
        [Cond("Ready", TRUE, "Ignored", "ignored")],
        [{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}],
        "2024-01-01T00:00:00Z",
    )
    assert result == [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}
    ]


def test_knative_not_installed() -> None:
    seen = Observed(ksvcs={}, knative_installed=False)
    plan = plan_reconcile(full_isvc(), CONFIG, seen, T0)
    assert kinds(plan) == ["Service/iris"]
    conds = conditions(plan)
    for component in ("Predictor", "Transformer", "Explainer"):
        cond = conds[f"{component}Ready"]
        assert (cond["status"], cond["reason"]) == ("False", "KnativeServingNotInstalled")
        assert "Knative Serving is not installed" in cond["message"]
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "KnativeServingNotInstalled"


def test_istio_not_installed() -> None:
    seen = Observed(
        ksvcs={"predictor": ksvc("iris")},
        istio_installed=False,
    )  # fmt: skip
    plan = plan_reconcile(isvc(), CONFIG, seen, T0)
    assert kinds(plan) == ["Service/iris-predictor-default", "Service/iris"]
    conds = conditions(plan)
    assert conds["PredictorReady"]["status"] == "True"
    assert (conds["IngressReady"]["status"], conds["IngressReady"]["reason"]) == (
        "False",
        "IstioNotInstalled",
    )
    assert conds["Ready"]["reason"] == "IstioNotInstalled"
    assert "url" not in plan.status


def test_problems_surface_in_ready() -> None:
    seen = Observed(
        ksvcs={"predictor": ksvc("iris")},
        problems=(("ApplyFailed", 'admission webhook "validation.webhook.serving.knative.dev" '
                                  "denied the request: bad"),),
    )  # fmt: skip
    conds = conditions(plan_reconcile(isvc(), CONFIG, seen, T0))
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "ApplyFailed"
    assert "denied the request" in conds["Ready"]["message"]


def test_stale_generation_is_not_ready() -> None:
    obj = isvc(generation=2)
    seen = observed(predictor=ksvc("iris", generation=2, observed_generation=1))
    plan = plan_reconcile(obj, CONFIG, seen, T0)
    cond = conditions(plan)["PredictorReady"]
    assert (cond["status"], cond["reason"]) == ("Unknown", "KnativeServiceUpdating")
    assert "generation 2" in cond["message"]


def test_every_non_true_condition_has_reason_and_message() -> None:
    scenarios = [
        observed(),
        observed(predictor=ksvc("iris", ready="Unknown")),
        observed(predictor=ksvc("iris", ready="False")),
        Observed(ksvcs={}, knative_installed=False),
    ]
    for seen in scenarios:
        plan = plan_reconcile(copy.deepcopy(full_isvc()), CONFIG, seen, T0)
        for cond in plan.status["conditions"]:
            if cond["status"] != "True":
                assert cond.get("reason") and cond.get("message"), cond
