"""The TrainedModel resource (serving.kubeflow.org/v1alpha1): one model of a multi-model server.

A TrainedModel names its parent InferenceService, whose predictor runs a multi-model server,
and the model to load there (storage URI, framework, memory). The operator writes every
TrainedModel of a parent into the parent's ``modelconfig-<isvc>-<shard>`` ConfigMap, which the
agent sidecar in the predictor pods reads to pull and load the models.
"""

from __future__ import annotations

from typing import Final

from pydantic import Field

from kfserving_operator.api.base import ApiModel
from kfserving_operator.api.constants import GROUP
from kfserving_operator.api.inference_service import ObjectMeta, Resource
from kfserving_operator.api.podspec import Quantity
from kfserving_operator.api.status import Addressable, Condition, StatusModel

TM_VERSION: Final = "v1alpha1"
TM_API_VERSION: Final = f"{GROUP}/{TM_VERSION}"
TM_KIND: Final = "TrainedModel"
TM_PLURAL: Final = "trainedmodels"
TM_SINGULAR: Final = "trainedmodel"
TM_SHORT_NAME: Final = "tm"
# KFServing labels every TrainedModel with its parent's name under this (unprefixed) key; the
# SDK and users select a parent's models with it, and so does the operator.
PARENT_LABEL: Final = "inferenceservice"

# Condition types (KFServing's), all of which Ready depends on, plus ModelConfigured: the
# model is in the parent's model config, which is what makes the agent load it.
INFERENCE_SERVICE_READY: Final = "InferenceServiceReady"
FRAMEWORK_SUPPORTED: Final = "FrameworkSupported"
MEMORY_RESOURCE_AVAILABLE: Final = "MemoryResourceAvailable"
IS_MMS_PREDICTOR: Final = "IsMMSPredictor"
MODEL_CONFIGURED: Final = "ModelConfigured"
TM_CONDITIONS: Final = (
    FRAMEWORK_SUPPORTED,
    INFERENCE_SERVICE_READY,
    IS_MMS_PREDICTOR,
    MEMORY_RESOURCE_AVAILABLE,
    MODEL_CONFIGURED,
)


class ModelSpec(ApiModel):
    """The model to load: where it is, what framework serves it, how much memory it needs."""

    storage_uri: str = Field(
        description=(
            "Where the agent pulls the model from: gs://, s3://, http:// or https://."
        )
    )
    framework: str = Field(
        description=(
            "Framework of the model (sklearn, xgboost, tensorflow, onnx, pytorch, ...); must be "
            "one the parent's model server supports."
        )
    )
    memory: Quantity = Field(
        description=(
            "Memory the model needs once loaded (a Kubernetes quantity such as 256Mi); the "
            "models of one InferenceService must fit in its predictor's memory limit."
        )
    )


class TrainedModelSpec(ApiModel):
    """Desired state: the parent InferenceService and the model."""

    inference_service: str = Field(
        description="Name of the multi-model InferenceService (same namespace) to load into."
    )
    model: ModelSpec = Field(description="The model to load.")


class TrainedModelStatus(StatusModel):
    """Observed state of a TrainedModel."""

    observed_generation: int | None = Field(
        default=None, description="Generation of the spec the status was computed from."
    )
    conditions: list[Condition] | None = Field(
        default=None, description="Conditions, sorted by type; Ready summarises them."
    )
    url: str | None = Field(
        default=None, description="External predict URL of the model on its InferenceService."
    )
    address: Addressable | None = Field(
        default=None, description="Cluster-internal predict URL of the model."
    )


class TrainedModel(Resource):
    """A model loaded into a multi-model InferenceService (serving.kubeflow.org/v1alpha1)."""

    api_version: str = Field(default=TM_API_VERSION, description="serving.kubeflow.org/v1alpha1.")
    kind: str = Field(default=TM_KIND, description="TrainedModel.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Object metadata.")
    spec: TrainedModelSpec = Field(description="Desired state of the TrainedModel.")
    status: TrainedModelStatus | None = Field(
        default=None, description="Observed state of the TrainedModel."
    )
