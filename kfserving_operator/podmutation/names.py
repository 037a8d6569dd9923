"""Names used only by the pod mutation: volumes, paths, secret keys and annotations.

The shared names (labels, internal annotations, container names) live in
:mod:`kfserving_operator.api.constants`; these are the ones nothing else needs.
"""

from __future__ import annotations

from typing import Final

from kfserving_operator.api import constants
from kfserving_operator.api.constants import (
    GROUP,
)

# Storage initializer.
PROVISION_VOLUME_NAME: Final = "kfserving-provision-location"
PVC_VOLUME_NAME: Final = "kfserving-pvc-source"
PVC_MOUNT_PATH: Final = "/mnt/pvc"
TERMINATION_MESSAGE_POLICY: Final = "FallbackToLogsOnError"

# GKE accelerators.
GKE_ACCELERATOR_NODE_SELECTOR: Final = "cloud.google.com/gke-accelerator"

# Agent sidecar.
QUEUE_PROXY_CONTAINER_NAME: Final = constants.QUEUE_PROXY_CONTAINER_NAME
AGENT_PROBE_COMMAND: Final = ("/ko-app/agent", "--probe-period", "0")
AGENT_PROBE_TIMEOUT_SECONDS: Final = 10
# Multi-model puller: where the model config sits and where models are pulled to. The
# controller writes these annotations on MMS predictors; the defaults match what it writes.
AGENT_CONFIG_VOLUME_NAME_ANNOTATION = constants.AGENT_CONFIG_VOLUME_NAME_ANNOTATION
AGENT_CONFIG_MOUNT_PATH_ANNOTATION = constants.AGENT_CONFIG_MOUNT_PATH_ANNOTATION
AGENT_MODEL_DIR_ANNOTATION = constants.AGENT_MODEL_DIR_ANNOTATION
DEFAULT_AGENT_CONFIG_DIR = constants.AGENT_CONFIG_MOUNT_PATH
MODEL_DIR_VOLUME_NAME: Final = "model-dir"
MODEL_CONFIG_VOLUME_NAME: Final = "model-config"
# v1alpha2-era pod label read for ``--endpoint``.
ENDPOINT_LABEL: Final = "endpoint"

# S3 Secret annotations.
S3_ENDPOINT_ANNOTATION: Final = f"{GROUP}/s3-endpoint"
S3_USE_HTTPS_ANNOTATION: Final = f"{GROUP}/s3-usehttps"
S3_REGION_ANNOTATION: Final = f"{GROUP}/s3-region"
S3_USE_ANON_CREDENTIAL_ANNOTATION: Final = f"{GROUP}/s3-useanoncredential"
S3_VERIFY_SSL_ANNOTATION: Final = f"{GROUP}/s3-verifyssl"
S3_USE_VIRTUAL_BUCKET_ANNOTATION: Final = f"{GROUP}/s3-usevirtualbucket"

# S3 environment variables (names the storage initializer reads).
AWS_ACCESS_KEY_ID_ENV: Final = "AWS_ACCESS_KEY_ID"
AWS_SECRET_ACCESS_KEY_ENV: Final = "AWS_SECRET_ACCESS_KEY"
AWS_SESSION_TOKEN: Final = "AWS_SESSION_TOKEN"
S3_ENDPOINT_ENV: Final = "S3_ENDPOINT"
AWS_ENDPOINT_URL_ENV: Final = "AWS_ENDPOINT_URL"
S3_USE_HTTPS_ENV: Final = "S3_USE_HTTPS"
AWS_REGION_ENV: Final = "AWS_REGION"
AWS_DEFAULT_REGION_ENV: Final = "AWS_DEFAULT_REGION"
S3_VERIFY_SSL_ENV: Final = "S3_VERIFY_SSL"
AWS_ANON_CREDENTIAL_ENV: Final = "awsAnonymousCredential"
S3_USE_VIRTUAL_BUCKET_ENV: Final = "S3_USER_VIRTUAL_BUCKET"  # sic, the storage initializer's name

# GCS.
GCS_VOLUME_NAME: Final = "user-gcp-sa"
GCS_MOUNT_PATH: Final = "/var/secrets/"
GCS_CREDENTIALS_ENV: Final = "GOOGLE_APPLICATION_CREDENTIALS"

# Azure: (legacy KFServing name, current name) per value; the Secret may use either key.
AZURE_KEYS: Final = (
    ("AZ_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID"),
    ("AZ_TENANT_ID", "AZURE_TENANT_ID"),
    ("AZ_CLIENT_ID", "AZURE_CLIENT_ID"),
    ("AZ_CLIENT_SECRET", "AZURE_CLIENT_SECRET"),
)
AZURE_STORAGE_ACCESS_KEY: Final = "AZURE_STORAGE_ACCESS_KEY"
AZURE_MARKER_KEYS: Final = ("AZ_CLIENT_SECRET", "AZURE_CLIENT_SECRET", AZURE_STORAGE_ACCESS_KEY)

# HTTP(S) download headers.
HTTPS_HOST_KEY: Final = "https-host"
HTTPS_HEADERS_KEY: Final = "headers"
HTTPS_HEADERS_ENV_SUFFIX: Final = "-headers"
