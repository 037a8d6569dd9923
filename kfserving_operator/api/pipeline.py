"""One pipeline from a raw InferenceService to a defaulted, validated model, and its cache.

Parse, default, validate: the admission webhooks, the reconciler and ``render`` all go
through here, so what is admitted is exactly what is reconciled. The pipeline is pure and the
costliest step of a plan or an admission, so recent results are kept in one small bounded
cache (:data:`RECENT`), under keys of two kinds:

- ``object`` keys (:func:`parse_and_default`, the reconciler and ``render``) cover the whole
  object except its status and the metadata the server bumps on every write: the model
  carries the object's identity (its uid goes into owner references), so a recreated object
  never meets the model of its predecessor. One creation plans the same generation two or
  three times within a second (its own event, then its children's).
- ``review`` keys (the webhooks) cover what validation reads. The API server calls the
  validating webhook right after the defaulting one, with the object the defaulting patch
  produced, plus the identity it fills in between; the defaulting webhook has that object
  parsed already, so it validates it there and leaves the result for the validating webhook.
  A key that differs (another webhook changed something, a CRD default) simply misses.

Results are remembered with the config they were computed under and count only for that
very config object.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.defaulting import default_inference_service
from kfserving_operator.api.deployment_mode import recorded_mode
from kfserving_operator.api.field_errors import FieldError, parse_inference_service
from kfserving_operator.api.inference_service import InferenceService
from kfserving_operator.api.validation import validate_inference_service

Result = tuple[InferenceService | None, list[FieldError]]

_VOLATILE_METADATA: Final = frozenset({"resourceVersion", "managedFields"})
_REVIEW_METADATA: Final = ("name", "generateName", "namespace", "labels", "annotations")


class RecentResults:
    """A bounded least-recently-used map from a key to the result computed under a config."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, tuple[OperatorConfig, Any]] = OrderedDict()

    def get(self, key: str, config: OperatorConfig) -> Any | None:
        hit = self._entries.get(key)
        if hit is None or hit[0] is not config:
            return None
        self._entries.move_to_end(key)
        return hit[1]

    def put(self, key: str, config: OperatorConfig, result: Any) -> None:
        self._entries[key] = (config, result)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def pop(self, key: str, config: OperatorConfig) -> Any | None:
        hit = self._entries.pop(key, None)
        return hit[1] if hit is not None and hit[0] is config else None

    def __contains__(self, key: str) -> bool:
        return key in self._entries


RECENT: Final = RecentResults(768)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def object_key(raw: Mapping[str, Any]) -> str:
    """Everything of ``raw`` but its status and the metadata bumped on every write."""
    metadata = raw.get("metadata")
    meta = {k: v for k, v in (metadata if isinstance(metadata, Mapping) else {}).items()
            if k not in _VOLATILE_METADATA}
    essence = {k: v for k, v in raw.items() if k not in ("status", "metadata")}
    return "object:" + _json([essence, meta])


def review_key(obj: Mapping[str, Any], spec: Any) -> str:
    """What validation reads of ``obj``, with ``spec`` as its spec."""
    meta = obj.get("metadata") or {}
    return "review:" + _json([obj.get("apiVersion"), obj.get("kind"),
                              {k: meta.get(k) for k in _REVIEW_METADATA}, spec,
                              obj.get("status")])


def _run(obj: Mapping[str, Any], config: OperatorConfig) -> tuple[Result, bool]:
    """Parse, default and validate ``obj``: (the defaulted model or None when it does not
    parse, the errors), and whether it parsed."""
    model, errors = parse_inference_service(obj)
    if model is None or errors:
        return (None, errors), False
    defaulted = default_inference_service(model, config, in_place=True)  # parsed just here
    return (defaulted, validate_inference_service(defaulted, config)), True


def parse_and_default(raw: Mapping[str, Any], config: OperatorConfig) -> Result:
    """The reconciler's view: the defaulted model when the spec is valid (else None), and
    the errors. Of the status only the recorded deployment mode is read."""
    # The mode recorded in the status is part of the input: it decides the rules.
    recorded = recorded_mode(raw)
    key = object_key(raw) + (f"|mode:{recorded}" if recorded else "")
    hit: Result | None = RECENT.get(key, config)
    if hit is None:
        spec_only: dict[str, Any] = {k: v for k, v in raw.items() if k != "status"}
        if recorded:
            spec_only["status"] = {"deploymentMode": recorded}
        (model, errors), _ = _run(spec_only, config)
        hit = (None if errors else model, errors)
        RECENT.put(key, config, hit)
    return hit[0], list(hit[1])


def default_for_admission(obj: Mapping[str, Any], config: OperatorConfig) -> Any | None:
    """The defaulting webhook's view: the defaulted spec (wire form), or None when ``obj``
    does not parse (the validating webhook then rejects it with every problem). Leaves the
    validation of the defaulted object for :func:`validate_for_admission`."""
    (model, errors), parsed = _run(obj, config)
    if not parsed or model is None:
        return None
    spec = model.to_wire().get("spec", {})
    RECENT.put(review_key(obj, spec), config, errors)
    return spec


def validate_for_admission(obj: Mapping[str, Any], config: OperatorConfig) -> list[FieldError]:
    """The validating webhook's view: the errors of ``obj`` as it stands (taken once from
    the defaulting webhook's result when it produced exactly this object)."""
    remembered: list[FieldError] | None = RECENT.pop(review_key(obj, obj.get("spec")), config)
    if remembered is not None:
        return remembered
    return validate_inference_service(obj, config)
