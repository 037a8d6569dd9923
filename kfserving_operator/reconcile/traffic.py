"""Canary arithmetic: the traffic a component's Knative Service gets, and rollout bookkeeping.

The rules are the corrected ones of later KServe (kserve/kserve#1968, #2040, #2097), not
0.6.1's special case that could route the ``prev`` share to the revision *before* the last
rolled-out one:

* ``desired_traffic``: with a rolled-out revision R and ``canaryTrafficPercent`` p < 100 the
  split is ``latest p / prev(R) 100-p``; otherwise the latest ready revision gets 100%.
  A new InferenceService (no R yet) always starts with 100% on its first revision.
* ``track_rollout``: reads the Knative Service status. A promotion is recorded when the
  latest ready revision carries 100% of the traffic (summed over all its targets); a
  rollback is recorded when, during a canary, all traffic is back on R while a newer
  revision is ready.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from kfserving_operator.api.constants import GROUP, LATEST_TAG, PREV_TAG
from kfserving_operator.reconcile.common import JsonDict, mapping, sequence, text

# status.annotations[<component>-rollout] values.
ROLLOUT_CANARY: Final = "Canary"
ROLLOUT_ROLLED_OUT: Final = "RolledOut"
ROLLOUT_ROLLED_BACK: Final = "RolledBack"

EVENT_ROLLED_OUT: Final = "RolledOut"
EVENT_ROLLED_BACK: Final = "RolledBack"


def rollout_annotation(component: str) -> str:
    """``serving.kubeflow.org/<component>-rollout``: Canary, RolledOut or RolledBack."""
    return f"{GROUP}/{component}-rollout"


def desired_traffic(
    canary_percent: int | None, rolled_out: str | None, tag_routing: bool
) -> list[JsonDict]:
    """The ``spec.traffic`` of a component's Knative Service."""
    latest: JsonDict = {"latestRevision": True}
    if tag_routing:
        latest["tag"] = LATEST_TAG
    if rolled_out and canary_percent is not None and canary_percent < 100:
        percent = max(0, canary_percent)
        latest["percent"] = percent
        previous: JsonDict = {
            "revisionName": rolled_out,
            "latestRevision": False,
            "percent": 100 - percent,
            "tag": PREV_TAG,
        }
        return [latest, previous]
    latest["percent"] = 100
    return [latest]


def _percent(target: Mapping[str, Any]) -> int:
    value = target.get("percent")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def normalise_traffic(traffic: object) -> list[JsonDict]:
    """Knative status traffic with ``latestRevision`` and ``percent`` on every entry.

    The KFServing SDK and the printer columns index both keys directly.
    """
    result: list[JsonDict] = []
    for raw in sequence(traffic):
        entry = mapping(raw)
        if not entry:
            continue
        item: JsonDict = {}
        for key in ("tag", "revisionName", "configurationName", "url"):
            value = text(entry.get(key))
            if value is not None:
                item[key] = value
        item["latestRevision"] = entry.get("latestRevision") is True
        item["percent"] = _percent(entry)
        result.append(item)
    return result


def revision_percent(traffic: list[JsonDict], revision: str | None) -> int:
    """The share of the traffic a revision gets, summed over all targets naming it."""
    if not revision:
        return 0
    return sum(_percent(t) for t in traffic if t.get("revisionName") == revision)


def latest_percent(traffic: list[JsonDict]) -> int:
    """The share of the traffic the ``latestRevision: true`` targets get."""
    return sum(_percent(t) for t in traffic if t.get("latestRevision") is True)


@dataclass(frozen=True)
class RolloutResult:
    """The revision fields of a component status after reading the Knative Service."""

    latest_created: str | None
    latest_ready: str | None
    latest_rolled_out: str | None
    previous_rolled_out: str | None
    traffic: list[JsonDict] | None
    state: str | None  # value of the rollout annotation, None = leave unset
    events: tuple[tuple[str, str, str], ...]


def track_rollout(
    component: str,
    stored: Mapping[str, Any],
    ksvc_status: Mapping[str, Any] | None,
    stored_state: str | None,
) -> RolloutResult:
    """Revision bookkeeping of one component.

    ``stored`` is the component's stored status (wire format), ``ksvc_status`` the observed
    Knative Service's ``status`` (None when it does not exist), ``stored_state`` the rollout
    annotation written last time.
    """
    latest_created = text(stored.get("latestCreatedRevision"))
    latest_ready = text(stored.get("latestReadyRevision"))
    rolled_out = text(stored.get("latestRolledoutRevision"))
    previous = text(stored.get("previousRolledoutRevision"))
    stored_traffic = stored.get("traffic")
    traffic = normalise_traffic(stored_traffic) if isinstance(stored_traffic, list) else None
    state = stored_state
    events: list[tuple[str, str, str]] = []
    if ksvc_status is None:
        return RolloutResult(latest_created, latest_ready, rolled_out, previous, traffic, state, ())

    latest_created = text(ksvc_status.get("latestCreatedRevisionName")) or latest_created
    latest_ready = text(ksvc_status.get("latestReadyRevisionName")) or latest_ready
    if isinstance(ksvc_status.get("traffic"), list):
        traffic = normalise_traffic(ksvc_status.get("traffic"))
    observed = traffic or []

    ready_share = revision_percent(observed, latest_ready)
    if latest_ready and latest_ready != rolled_out and ready_share == 100:
        if rolled_out:
            previous = rolled_out
            state = ROLLOUT_ROLLED_OUT
            events.append(
                (
                    "Normal",
                    EVENT_ROLLED_OUT,
                    f"{component.capitalize()} revision {latest_ready} rolled out with 100% of "
                    f"the traffic (previous revision {rolled_out})",
                )
            )
        rolled_out = latest_ready
    elif (
        rolled_out
        and latest_ready
        and latest_ready != rolled_out
        and revision_percent(observed, rolled_out) == 100
        and stored_state in (ROLLOUT_CANARY, ROLLOUT_ROLLED_BACK)
    ):
        state = ROLLOUT_ROLLED_BACK
        if stored_state == ROLLOUT_CANARY:
            events.append(
                (
                    "Normal",
                    EVENT_ROLLED_BACK,
                    f"{component.capitalize()} rolled back: all traffic is on revision "
                    f"{rolled_out}; revision {latest_ready} gets none",
                )
            )
    elif 0 < latest_percent(observed) < 100:
        state = ROLLOUT_CANARY

    return RolloutResult(
        latest_created, latest_ready, rolled_out, previous, traffic, state, tuple(events)
    )
