"""Status propagation: component status from the Knative Services, URLs, stored status parsing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from kfserving_operator.api.components import PROTOCOL_V2
from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.inference_service import InferenceService
from kfserving_operator.api.status import InferenceServiceStatus
from kfserving_operator.reconcile.common import JsonDict, mapping, text
from kfserving_operator.reconcile.conditions import ksvc_ready
from kfserving_operator.reconcile.containers import is_multi_model, predictor_protocol
from kfserving_operator.reconcile.istio import internal_host
from kfserving_operator.reconcile.traffic import RolloutResult, track_rollout


def stored_status(raw: object) -> JsonDict:
    """The isvc's current status in clean wire form ({} when absent or unreadable)."""
    if not isinstance(raw, Mapping) or not raw:
        return {}
    try:
        return InferenceServiceStatus.model_validate(dict(raw)).to_wire()
    except ValidationError:
        # A status this version cannot read (hand-edited, or from a very different
        # version): start over rather than fail; conditions are rebuilt every time anyway.
        salvaged = {k: v for k, v in raw.items() if k != "conditions"}
        try:
            return InferenceServiceStatus.model_validate(salvaged).to_wire()
        except ValidationError:
            return {}


def predict_path(isvc: InferenceService, config: OperatorConfig) -> str:
    """``/v1/models/N:predict``, ``/v2/models/N/infer``, or '' for a multi-model predictor."""
    predictor = isvc.spec.predictor
    if is_multi_model(predictor, config):
        return ""
    if predictor_protocol(predictor) == PROTOCOL_V2:
        return f"/v2/models/{isvc.name}/infer"
    return f"/v1/models/{isvc.name}:predict"


def address_url(isvc: InferenceService, config: OperatorConfig) -> str:
    """``status.address.url``: the in-cluster URL of the isvc, with the predict path."""
    return f"http://{internal_host(isvc, config)}{predict_path(isvc, config)}"


def component_status(
    component: str,
    stored: Mapping[str, Any],
    ksvc: Mapping[str, Any] | None,
    stored_state: str | None,
) -> tuple[JsonDict, RolloutResult]:
    """The new ``status.components.<component>`` and the rollout bookkeeping behind it.

    URL and address are copied from the Knative Service only while it is Ready for its
    current generation; otherwise the last known ones are kept.
    """
    ksvc_status = mapping(ksvc.get("status")) if ksvc is not None else None
    rollout = track_rollout(component, stored, ksvc_status, stored_state)
    result: JsonDict = {}
    for key, value in (
        ("latestReadyRevision", rollout.latest_ready),
        ("latestCreatedRevision", rollout.latest_created),
        ("previousRolledoutRevision", rollout.previous_rolled_out),
        ("latestRolledoutRevision", rollout.latest_rolled_out),
    ):
        if value:
            result[key] = value
    if rollout.traffic is not None:
        result["traffic"] = rollout.traffic
    url = text(stored.get("url"))
    address = text(mapping(stored.get("address")).get("url"))
    if ksvc is not None and ksvc_status is not None and ksvc_ready(ksvc):
        url = text(ksvc_status.get("url")) or url
        address = text(mapping(ksvc_status.get("address")).get("url")) or address
    if url:
        result["url"] = url
    if address:
        result["address"] = {"url": address}
    return result, rollout
