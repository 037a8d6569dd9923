"""Registration of the TrainedModel validator and of the InferenceService conversion webhook.

Registered next to the InferenceService webhooks (``registration.py``) and in the same two
ways: a loopback ``url`` when the operator runs outside the cluster, the webhook Service in a
cluster; with the serving certificate's CA as ``caBundle`` either way.

The conversion webhook lives in the InferenceService CRD itself (``spec.conversion``), so
registering it is a merge patch of that one field (a patch, not an apply: ``url`` and
``service`` are one-of, and the installed CRD's ``service`` belongs to whoever installed it).
Re-applying the CRD file resets it to the webhook Service; the operator watches the CRD and
registers again. Only v1alpha2 requests and reads need the webhook: objects are stored as
v1beta1, so v1beta1 traffic never calls it and an operator outage never blocks it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from kfserving_operator.api import constants as c
from kfserving_operator.api.constants import APIEXTENSIONS_API_VERSION as CRD_API_VERSION
from kfserving_operator.api.constants import OPERATOR_NAME as MANAGED_BY
from kfserving_operator.api.crd import CONVERSION_PATH, conversion_webhook
from kfserving_operator.api.trained_model import TM_PLURAL, TM_VERSION
from kfserving_operator.k8s.api import KubeApi
from kfserving_operator.webhooks.registration import MANAGED_BY_LABEL, namespace_scope

logger = logging.getLogger("kfserving_operator.conversion")
TM_CONFIGURATION_NAME: Final = "trainedmodel.serving.kubeflow.org"
TM_VALIDATOR_PATH: Final = "/validate-serving-kubeflow-org-v1alpha1-trainedmodel"
TM_VALIDATOR_NAME: Final = "trainedmodel.kfserving-webhook-server.validator"
ISVC_CRD_NAME: Final = f"{c.PLURAL}.{c.GROUP}"
# What the operator removes on a local-mode shutdown, besides the InferenceService webhooks.
LOCAL_CLEANUP: Final = (("ValidatingWebhookConfiguration", TM_CONFIGURATION_NAME),)


def trained_model_configuration(client_config_for: Any,
                                watch_namespaces: tuple[str, ...] = ()) -> dict[str, Any]:
    """The TrainedModel validator. DELETE is not in its rules: deletions are never blocked,
    also not the garbage collector's when an InferenceService goes. A namespace-scoped
    operator validates only in its ``watch_namespaces``."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": TM_CONFIGURATION_NAME, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "webhooks": [{
            "name": TM_VALIDATOR_NAME,
            "clientConfig": client_config_for(TM_VALIDATOR_PATH),
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "timeoutSeconds": 10,
            "rules": [{
                "apiGroups": [c.GROUP],
                "apiVersions": [TM_VERSION],
                "operations": ["CREATE", "UPDATE"],
                "resources": [TM_PLURAL],
                "scope": "Namespaced",
            }],
            **namespace_scope(watch_namespaces),
        }],
    }


def conversion_client_config(client_config_for: Any) -> dict[str, Any]:
    """The clientConfig of the conversion webhook (``url`` or ``service``, and ``caBundle``)."""
    config: dict[str, Any] = client_config_for(CONVERSION_PATH)
    return config


def conversion_patch(client_config: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that points the InferenceService CRD's conversion at ``client_config``
    (clearing the other one of ``url`` and ``service``)."""
    cleared = {key: None for key in ("url", "service") if key not in client_config}
    return {"spec": {"conversion": {
        "strategy": "Webhook",
        "webhook": {"conversionReviewVersions": ["v1"],
                    "clientConfig": {**cleared, **client_config}},
    }}}


def conversion_is_current(crd: dict[str, Any], client_config: dict[str, Any]) -> bool:
    """True when the CRD's conversion webhook is ``client_config`` already."""
    conversion = (crd.get("spec") or {}).get("conversion") or {}
    webhook = conversion.get("webhook") or {}
    return bool(conversion.get("strategy") == "Webhook"
                and webhook.get("clientConfig") == client_config)


def configurations(client_config_for: Any,
                   watch_namespaces: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Webhook configurations to apply at start and whenever the certificate changes."""
    return [trained_model_configuration(client_config_for, watch_namespaces)]


def shipped_conversion_patch() -> dict[str, Any]:
    """The merge patch that restores the conversion webhook of the shipped CRD file (the
    webhook Service). A CRD left pointing at a loopback ``url`` cannot be re-applied from the
    file with server-side apply (``url`` and ``service`` would both be set), so a local
    operator restores it on shutdown, and ``make run`` and the tests before applying."""
    client_config: dict[str, Any] = conversion_webhook()["webhook"]["clientConfig"]
    return conversion_patch(client_config)


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
