"""Keep the InferenceService CRD's conversion webhook pointed at this operator.

Registered with the other webhooks at start and on certificate renewal
(:class:`~kfserving_operator.webhooks.legacy_registration.ConversionRegistration`);
re-registered here when the CRD changes under us (``kubectl apply`` of the CRD file resets
it to the webhook Service, which outside a cluster does not exist), so v1alpha2 keeps
working without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import kopf

from kfserving_operator.k8s.api import KubeApi, KubeError
from kfserving_operator.webhooks.legacy_registration import (
    ISVC_CRD_NAME,
    ConversionRegistration,
)

logger = logging.getLogger("kfserving_operator.conversion")


def register_conversion_guard(registry: kopf.OperatorRegistry,
                              api: Callable[[], KubeApi | None],
                              registration: ConversionRegistration) -> None:
    """Re-register the conversion webhook whenever the CRD stops pointing at us."""

    def _is_isvc_crd(**kwargs: Any) -> bool:
        return bool(kwargs["name"] == ISVC_CRD_NAME)

    @kopf.on.event("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                   when=_is_isvc_crd, registry=registry)
    async def inference_service_crd_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        client = api()
        if type == "DELETED" or client is None:
            return
        try:
            await registration.ensure(client, dict(body))
        except KubeError as exc:
            logger.error("could not re-register the conversion webhook: %s", exc)
