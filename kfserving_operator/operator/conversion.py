"""Keep the InferenceService CRD's conversion webhook pointed at this operator.

Registered with the other webhooks at start and on certificate renewal; re-registered when
the CRD changes under us (``kubectl apply`` of the CRD file resets it to the webhook Service,
which outside a cluster does not exist), so v1alpha2 keeps working without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kopf

from kfserving_operator.k8s.api import KubeApi, KubeError
from kfserving_operator.webhooks.legacy_registration import (
    ISVC_CRD_NAME,
    conversion_client_config,
    conversion_is_current,
    conversion_patch,
    shipped_conversion_patch,
)

logger = logging.getLogger("kfserving_operator.conversion")
CRD_API_VERSION = "apiextensions.k8s.io/v1"


@dataclass
class ConversionRegistration:
    """The conversion clientConfig this operator registered last (None before the first)."""

    client_config: dict[str, Any] | None = None

    async def register(self, api: KubeApi, client_config_for: Any) -> None:
        """Point the CRD's conversion at this operator, unless it already does (another
        replica registered it, or this one before a restart): then nothing is written."""
        self.client_config = conversion_client_config(client_config_for)
        crd = await api.get(CRD_API_VERSION, "CustomResourceDefinition", ISVC_CRD_NAME)
        if crd is None:
            logger.warning("the InferenceService CRD is not installed; v1alpha2 conversion is "
                           "registered when it appears")
            return
        await self.ensure(api, crd)

    async def ensure(self, api: KubeApi, crd: dict[str, Any] | None = None) -> None:
        """Patch the CRD unless ``crd`` (its current state, when known) already matches.

        A CRD pointing at another loopback URL is left alone: another operator outside the
        cluster registered itself there, and taking it back and forth would never end.
        """
        if self.client_config is None:
            return
        if crd is not None:
            if conversion_is_current(crd, self.client_config):
                return
            current = (((crd.get("spec") or {}).get("conversion") or {}).get("webhook")
                       or {}).get("clientConfig") or {}
            if current.get("url") and current.get("url") != self.client_config.get("url"):
                logger.warning("the InferenceService conversion webhook points at %s, not at "
                               "this operator; leaving it", current["url"])
                return
        await api.merge_patch(CRD_API_VERSION, "CustomResourceDefinition", ISVC_CRD_NAME,
                              conversion_patch(self.client_config))
        where = self.client_config.get("url") or self.client_config.get("service")
        logger.info("InferenceService conversion webhook registered at %s", where)


    async def restore_shipped(self, api: KubeApi) -> None:
        """Point the CRD back at the webhook Service, as the CRD file has it (local mode,
        on shutdown: the loopback URL is about to stop answering)."""
        self.client_config = None
        await api.merge_patch(CRD_API_VERSION, "CustomResourceDefinition", ISVC_CRD_NAME,
                              shipped_conversion_patch())


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
