"""Registration of the TrainedModel validator and of the InferenceService conversion webhook.

Registered next to the InferenceService webhooks (``registration.py``) and in the same two
ways: a loopback ``url`` when the operator runs outside the cluster, the webhook Service in a
cluster; with the serving certificate's CA as ``caBundle`` either way.

The conversion webhook lives in the InferenceService CRD itself (``spec.conversion``), so
registering it is a server-side apply of that one field onto the CRD. Only v1alpha2 requests
and reads need it: objects are stored as v1beta1, so v1beta1 traffic never calls it and an
operator outage never blocks it.
"""

from __future__ import annotations

from typing import Any, Final

from kfserving_operator.api import constants as c
from kfserving_operator.api.crd import CONVERSION_PATH, conversion_webhook
from kfserving_operator.api.trained_model import TM_PLURAL, TM_VERSION
from kfserving_operator.webhooks.registration import MANAGED_BY, MANAGED_BY_LABEL

TM_CONFIGURATION_NAME: Final = "trainedmodel.serving.kubeflow.org"
TM_VALIDATOR_PATH: Final = "/validate-serving-kubeflow-org-v1alpha1-trainedmodel"
TM_VALIDATOR_NAME: Final = "trainedmodel.kfserving-webhook-server.validator"
ISVC_CRD_NAME: Final = f"{c.PLURAL}.{c.GROUP}"
# What the operator removes on a local-mode shutdown, besides the InferenceService webhooks.
LOCAL_CLEANUP: Final = (("ValidatingWebhookConfiguration", TM_CONFIGURATION_NAME),)


def trained_model_configuration(client_config_for: Any) -> dict[str, Any]:
    """The TrainedModel validator. DELETE is not in its rules: deletions are never blocked,
    also not the garbage collector's when an InferenceService goes."""
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
        }],
    }


def conversion_registration(client_config_for: Any) -> dict[str, Any]:
    """A server-side apply of the InferenceService CRD's ``spec.conversion`` only."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": ISVC_CRD_NAME},
        "spec": {"conversion": conversion_webhook(client_config_for(CONVERSION_PATH))},
    }


def configurations(client_config_for: Any) -> list[dict[str, Any]]:
    """Everything to apply at start and whenever the serving certificate changes."""
    return [trained_model_configuration(client_config_for),
            conversion_registration(client_config_for)]
