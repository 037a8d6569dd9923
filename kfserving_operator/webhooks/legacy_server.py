"""The routes of the v1alpha2, TrainedModel and conversion webhooks, for ``server.py``.

Each handler reads what its review needs and calls the pure review functions of
``legacy.py``. Only the TrainedModel validator reads the cluster: the parent InferenceService
and its model ConfigMap (two GETs per created or re-specified TrainedModel).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from kfserving_operator.api import constants as c
from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.constants import model_config_name
from kfserving_operator.api.crd import CONVERSION_PATH
from kfserving_operator.k8s.api import KubeApi
from kfserving_operator.reconcile.modelconfig import MODELS_KEY
from kfserving_operator.reconcile.trainedmodel import read_parent
from kfserving_operator.webhooks import legacy
from kfserving_operator.webhooks.legacy_registration import TM_VALIDATOR_PATH
from kfserving_operator.webhooks.registration import (
    V1ALPHA2_DEFAULTER_PATH,
    V1ALPHA2_VALIDATOR_PATH,
)

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def legacy_routes(api: KubeApi, config: Callable[[], OperatorConfig]
                  ) -> list[tuple[str, Handler]]:
    """(path, handler) of every webhook this module serves."""

    async def v1alpha2_defaulting(review: dict[str, Any]) -> dict[str, Any]:
        return legacy.review_v1alpha2_defaulting(review, config())

    async def v1alpha2_validation(review: dict[str, Any]) -> dict[str, Any]:
        return legacy.review_v1alpha2_validation(review, config())

    async def trained_model_validation(review: dict[str, Any]) -> dict[str, Any]:
        current = config()
        request = review.get("request", {})
        namespace = request.get("namespace") or ""
        name = legacy.trained_model_parent_name(review)
        if not legacy.needs_trained_model_checks(review) or not name:
            return legacy.review_trained_model_validation(
                review, read_parent(name, namespace, None, current), current, None)
        raw = await api.get(c.API_VERSION, c.KIND, name, namespace)
        parent = read_parent(name, namespace, raw, current)
        model_config = None
        if raw is not None:
            configmap = await api.get("v1", "ConfigMap", model_config_name(name), namespace)
            model_config = ((configmap or {}).get("data") or {}).get(MODELS_KEY)
        return legacy.review_trained_model_validation(review, parent, current, model_config)

    async def conversion(review: dict[str, Any]) -> dict[str, Any]:
        return legacy.review_conversion(review)

    return [
        (V1ALPHA2_DEFAULTER_PATH, v1alpha2_defaulting),
        (V1ALPHA2_VALIDATOR_PATH, v1alpha2_validation),
        (TM_VALIDATOR_PATH, trained_model_validation),
        (CONVERSION_PATH, conversion),
    ]
