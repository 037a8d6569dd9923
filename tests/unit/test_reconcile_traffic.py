"""Canary arithmetic and the rollout lifecycle, with the corrected (no stale prev) semantics."""

from __future__ import annotations

from typing import Any

import pytest

from kfserving_operator.reconcile.traffic import (
    desired_traffic,
    normalise_traffic,
    revision_percent,
    track_rollout,
)
from tests.unit.test_reconcile_plan import conditions, isvc, ksvc, observed, step

PREDICTOR = "iris-predictor-default"


def rev(n: int) -> str:
    return f"{PREDICTOR}-{n:05d}"


def spec_traffic(plan: Any) -> list[dict[str, Any]]:
    traffic: list[dict[str, Any]] = plan.apply[0]["spec"]["traffic"]
    return traffic


def predictor_status(plan: Any) -> dict[str, Any]:
    status: dict[str, Any] = plan.status["components"]["predictor"]
    return status


def event_reasons(plan: Any) -> list[str]:
    return [reason for _, reason, _ in plan.events]


# ------------------------------------------------------------------------------------------
# desired_traffic


def test_new_isvc_gets_all_traffic_on_latest_even_with_canary_percent() -> None:
    assert desired_traffic(10, None, False) == [{"latestRevision": True, "percent": 100}]


def test_split_against_rolled_out_revision() -> None:
    assert desired_traffic(10, "r1", False) == [
        {"latestRevision": True, "percent": 10},
        {"revisionName": "r1", "latestRevision": False, "percent": 90, "tag": "prev"},
    ]


@pytest.mark.parametrize("percent", [None, 100])
def test_no_split_without_canary_or_at_100(percent: int | None) -> None:
    assert desired_traffic(percent, "r1", False) == [{"latestRevision": True, "percent": 100}]


def test_zero_percent_sends_everything_to_prev() -> None:
    assert desired_traffic(0, "r1", False) == [
        {"latestRevision": True, "percent": 0},
        {"revisionName": "r1", "latestRevision": False, "percent": 100, "tag": "prev"},
    ]


def test_tag_routing_tags_latest() -> None:
    assert desired_traffic(None, "r1", True) == [
        {"latestRevision": True, "tag": "latest", "percent": 100}
    ]
    assert desired_traffic(30, "r1", True)[0] == {
        "latestRevision": True,
        "tag": "latest",
        "percent": 30,
    }


def test_revision_percent_sums_all_targets() -> None:
    traffic = normalise_traffic(
        [
            {"revisionName": "a", "percent": 60, "latestRevision": True},
            {"revisionName": "a", "percent": 40, "tag": "prev"},
            {"revisionName": "b", "tag": "x"},
        ]
    )
    assert revision_percent(traffic, "a") == 100
    assert revision_percent(traffic, "b") == 0
    assert traffic[2] == {"revisionName": "b", "tag": "x", "latestRevision": False, "percent": 0}


def test_first_rollout_records_without_previous() -> None:
    result = track_rollout(
        "predictor",
        {},
        {
            "latestReadyRevisionName": "r1",
            "latestCreatedRevisionName": "r1",
            "traffic": [{"revisionName": "r1", "latestRevision": True, "percent": 100}],
        },
        None,
    )
    assert (result.latest_rolled_out, result.previous_rolled_out) == ("r1", None)
    assert result.state is None and result.events == ()


# ------------------------------------------------------------------------------------------
# The whole lifecycle through plan_reconcile


def test_canary_lifecycle() -> None:
    obj = isvc()

    # 1. create: the ksvc does not exist yet; 100% to the latest revision.
    plan = step(obj, observed())
    assert spec_traffic(plan) == [{"latestRevision": True, "percent": 100}]
    assert predictor_status(plan) == {}

    # 2. rev1 ready with 100%: rolled out, no previous.
    plan = step(obj, observed(predictor=ksvc("iris", latest_ready=1)))
    status = predictor_status(plan)
    assert status["latestRolledoutRevision"] == rev(1)
    assert "previousRolledoutRevision" not in status
    assert status["latestReadyRevision"] == status["latestCreatedRevision"] == rev(1)
    assert conditions(plan)["Ready"]["status"] == "True"
    assert "annotations" not in plan.status

    # 3. canary 10% on a new model: split against rev1 at once.
    obj["spec"]["predictor"]["canaryTrafficPercent"] = 10
    obj["spec"]["predictor"]["sklearn"]["storageUri"] = "gs://bucket/iris-v2"
    obj["metadata"]["generation"] = 2
    stale = ksvc("iris", latest_ready=1, generation=2, observed_generation=1)
    plan = step(obj, observed(predictor=stale))
    assert spec_traffic(plan) == [
        {"latestRevision": True, "percent": 10},
        {"revisionName": rev(1), "latestRevision": False, "percent": 90, "tag": "prev"},
    ]
    assert conditions(plan)["PredictorReady"]["reason"] == "KnativeServiceUpdating"

    # 4. rev2 created but not ready: every request still lands on rev1.
    before_ready = ksvc(
        "iris", ready="Unknown", reason="RevisionMissing", message="rev2 is starting",
        latest_ready=1, latest_created=2, generation=2,
        traffic=[
            {"latestRevision": True, "percent": 10, "rev": 1},
            {"latestRevision": False, "percent": 90, "rev": 1, "tag": "prev"},
        ],
    )  # fmt: skip
    plan = step(obj, observed(predictor=before_ready))
    status = predictor_status(plan)
    assert revision_percent(status["traffic"], rev(1)) == 100
    assert status["latestRolledoutRevision"] == rev(1)
    assert status["latestCreatedRevision"] == rev(2)
    assert status["latestReadyRevision"] == rev(1)
    assert plan.status["annotations"] == {"serving.kubeflow.org/predictor-rollout": "Canary"}
    assert conditions(plan)["Ready"]["status"] == "Unknown"

    # 5. rev2 ready: 10 / 90 as the printer columns show it.
    canary = ksvc(
        "iris", latest_ready=2, generation=2,
        traffic=[
            {"latestRevision": True, "percent": 10, "rev": 2},
            {"latestRevision": False, "percent": 90, "rev": 1, "tag": "prev"},
        ],
    )  # fmt: skip
    plan = step(obj, observed(predictor=canary))
    status = predictor_status(plan)
    assert status["latestRolledoutRevision"] == rev(1)
    assert "previousRolledoutRevision" not in status
    prev = [t["percent"] for t in status["traffic"] if t.get("tag") == "prev"]
    latest = [t for t in status["traffic"] if t["latestRevision"] is True]
    assert prev == [90] and latest[0]["percent"] == 10 and latest[0]["revisionName"] == rev(2)
    assert conditions(plan)["Ready"]["status"] == "True"

    # 6. promote: remove canaryTrafficPercent; rev2 takes 100%.
    del obj["spec"]["predictor"]["canaryTrafficPercent"]
    obj["metadata"]["generation"] = 3
    plan = step(obj, observed(predictor=ksvc("iris", latest_ready=2, generation=3)))
    assert spec_traffic(plan) == [{"latestRevision": True, "percent": 100}]
    status = predictor_status(plan)
    assert status["latestRolledoutRevision"] == rev(2)
    assert status["previousRolledoutRevision"] == rev(1)
    assert plan.status["annotations"] == {"serving.kubeflow.org/predictor-rollout": "RolledOut"}
    assert event_reasons(plan) == ["RolledOut"]

    # 7. second canary: prev is rev2, never the stale rev1 - also before rev3 exists.
    obj["spec"]["predictor"]["canaryTrafficPercent"] = 20
    obj["spec"]["predictor"]["sklearn"]["storageUri"] = "gs://bucket/iris-v3"
    obj["metadata"]["generation"] = 4
    plan = step(obj, observed(predictor=ksvc("iris", latest_ready=2, generation=3)))
    assert spec_traffic(plan) == [
        {"latestRevision": True, "percent": 20},
        {"revisionName": rev(2), "latestRevision": False, "percent": 80, "tag": "prev"},
    ]
    canary3 = ksvc(
        "iris", latest_ready=3, generation=4,
        traffic=[
            {"latestRevision": True, "percent": 20, "rev": 3},
            {"latestRevision": False, "percent": 80, "rev": 2, "tag": "prev"},
        ],
    )  # fmt: skip
    plan = step(obj, observed(predictor=canary3))
    assert all(t.get("revisionName") != rev(1) for t in predictor_status(plan)["traffic"])
    assert plan.status["annotations"] == {"serving.kubeflow.org/predictor-rollout": "Canary"}

    # 8. rollback: 0% to the latest; everything back on rev2; rolled-out revision unchanged.
    obj["spec"]["predictor"]["canaryTrafficPercent"] = 0
    obj["metadata"]["generation"] = 5
    plan = step(obj, observed(predictor=canary3))
    assert spec_traffic(plan) == [
        {"latestRevision": True, "percent": 0},
        {"revisionName": rev(2), "latestRevision": False, "percent": 100, "tag": "prev"},
    ]
    rolled_back = ksvc(
        "iris", latest_ready=3, generation=5,
        traffic=[
            {"latestRevision": True, "percent": 0, "rev": 3},
            {"latestRevision": False, "percent": 100, "rev": 2, "tag": "prev"},
        ],
    )  # fmt: skip
    plan = step(obj, observed(predictor=rolled_back))
    status = predictor_status(plan)
    assert status["latestRolledoutRevision"] == rev(2)
    assert status["previousRolledoutRevision"] == rev(1)
    assert plan.status["annotations"] == {"serving.kubeflow.org/predictor-rollout": "RolledBack"}
    assert event_reasons(plan) == ["RolledBack"]
    # ... and the event is posted once.
    assert step(obj, observed(predictor=rolled_back)).events == ()

    # 9. a failing revision: Knative keeps serving rev3/rev2; status says why.
    obj["spec"]["predictor"]["canaryTrafficPercent"] = 10
    obj["spec"]["predictor"]["sklearn"]["storageUri"] = "gs://bucket/broken"
    obj["metadata"]["generation"] = 6
    url_before = plan.status["url"]
    failed = ksvc(
        "iris", ready="False", reason="RevisionFailed",
        message='Revision "iris-predictor-default-00004" failed with message: Back-off pulling '
        'image "kserve/sklearnserver:nope".',
        routes="True", latest_ready=3, latest_created=4, generation=6,
        traffic=[
            {"latestRevision": True, "percent": 10, "rev": 3},
            {"latestRevision": False, "percent": 90, "rev": 2, "tag": "prev"},
        ],
    )  # fmt: skip
    plan = step(obj, observed(predictor=failed))
    status = predictor_status(plan)
    assert status["latestCreatedRevision"] == rev(4)
    assert status["latestReadyRevision"] == rev(3)
    assert status["latestRolledoutRevision"] == rev(2)
    assert spec_traffic(plan)[1]["revisionName"] == rev(2)
    conds = conditions(plan)
    assert conds["PredictorReady"]["status"] == "False"
    assert conds["PredictorReady"]["reason"] == "RevisionFailed"
    assert "Back-off pulling image" in conds["PredictorReady"]["message"]
    assert conds["Ready"]["reason"] == "RevisionFailed"
    assert conds["IngressReady"]["status"] == "False"
    assert conds["IngressReady"]["reason"] == "Predictor ingress not created"
    assert plan.status["url"] == url_before
    assert status["url"] == "http://iris-predictor-default.default.example.com"
    assert [k["kind"] for k in plan.apply] == ["Service", "Service"]  # no VirtualService
    assert conds["PredictorReady"]["message"].endswith(
        f"the previous revisions keep serving ({rev(3)} 10%, {rev(2)} 90%), {rev(4)} gets none")
    # Said once: the failure event carries the cause, the NotReady event does not repeat it.
    assert event_reasons(plan) == ["InferenceServiceNotReady", "RevisionFailed"]
    assert plan.events[0][2] == "InferenceService [iris] is no longer Ready"
    assert step(obj, observed(predictor=failed)).events == ()


def test_promotion_recorded_from_observed_traffic_even_when_canary_set() -> None:
    # The ksvc already shows rev2 at 100% (promotion not yet recorded) when the user starts
    # the next canary: prev must be rev2, not the stale rev1.
    obj = isvc(
        status={
            "components": {
                "predictor": {
                    "latestRolledoutRevision": rev(1),
                    "latestReadyRevision": rev(1),
                    "latestCreatedRevision": rev(2),
                }
            }
        },
        predictor={"canaryTrafficPercent": 20, "sklearn": {"storageUri": "gs://bucket/v3"}},
        generation=7,
    )
    plan = step(obj, observed(predictor=ksvc("iris", latest_ready=2, generation=6)))
    assert spec_traffic(plan)[1]["revisionName"] == rev(2)
    status = predictor_status(plan)
    assert (status["latestRolledoutRevision"], status["previousRolledoutRevision"]) == (
        rev(2),
        rev(1),
    )


def test_tag_routing_splits_with_latest_tag() -> None:
    obj = isvc(annotations={"serving.kubeflow.org/enable-tag-routing": "true"})
    step(obj, observed(predictor=ksvc("iris")))
    obj["spec"]["predictor"]["canaryTrafficPercent"] = 25
    plan = step(obj, observed(predictor=ksvc("iris")))
    assert spec_traffic(plan) == [
        {"latestRevision": True, "tag": "latest", "percent": 25},
        {"revisionName": rev(1), "latestRevision": False, "percent": 75, "tag": "prev"},
    ]


def test_each_component_is_tracked_separately() -> None:
    obj = isvc(
        transformer={"canaryTrafficPercent": 50, "containers": [{"image": "t:1"}]},
        status={
            "components": {
                "transformer": {"latestRolledoutRevision": "iris-transformer-default-00001"}
            }
        },
    )
    plan = step(obj, observed())
    predictor_ksvc, transformer_ksvc = plan.apply[0], plan.apply[1]
    assert predictor_ksvc["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]
    assert transformer_ksvc["spec"]["traffic"][1] == {
        "revisionName": "iris-transformer-default-00001",
        "latestRevision": False,
        "percent": 50,
        "tag": "prev",
    }
