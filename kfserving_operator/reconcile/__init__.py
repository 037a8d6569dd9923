"""The pure reconcile core: desired children, status and events of an InferenceService.

No I/O and no kopf here. The operator shell calls :func:`plan_reconcile` with the raw
InferenceService, the operator config, what it observed in the cluster and the current time,
and carries out the returned :class:`Plan`.
"""

from kfserving_operator.api.pipeline import parse_and_default
from kfserving_operator.reconcile.plan import (
    EVENT_NOT_READY,
    EVENT_READY,
    ChildRef,
    Observed,
    Plan,
    plan_reconcile,
)

__all__ = [
    "EVENT_NOT_READY",
    "EVENT_READY",
    "ChildRef",
    "Observed",
    "Plan",
    "parse_and_default",
    "plan_reconcile",
]
