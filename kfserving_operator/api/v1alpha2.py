"""The serving.kubeflow.org/v1alpha2 InferenceService: KFServing's older API, still served.

Objects are stored as v1beta1; the apiserver converts between the two through the operator's
conversion webhook (``api/conversion.py``). These models give the v1alpha2 CRD schema and let
the v1alpha2 admission webhooks parse what they receive. v1alpha2 has a ``default`` endpoint
and an optional ``canary`` endpoint; v1beta1 has no canary endpoint (it splits traffic between
revisions instead), so a v1alpha2 canary is refused at admission.
"""

from __future__ import annotations

from typing import ClassVar, Final

from pydantic import Field

from kfserving_operator.api.base import ApiModel
from kfserving_operator.api.constants import GROUP, LOGGER_MODES
from kfserving_operator.api.constants import V1ALPHA2_VERSION as V1ALPHA2
from kfserving_operator.api.explainer import AIX_TYPES, ALIBI_TYPES
from kfserving_operator.api.inference_service import ObjectMeta, Resource
from kfserving_operator.api.podspec import Container, ResourceRequirements
from kfserving_operator.api.status import (
    Addressable,
    ComponentStatusSpec,
    Condition,
    StatusModel,
)

V1ALPHA2_API_VERSION: Final = f"{GROUP}/{V1ALPHA2}"
# v1alpha2 pytorch is always KFServing's pytorchserver, which needs a model class.
DEFAULT_PYTORCH_MODEL_CLASS: Final = "PyTorchModel"
# The predictor frameworks of v1alpha2, in the order KFServing checked them.
V1ALPHA2_PREDICTORS: Final = (
    "custom",
    "xgboost",
    "lightgbm",
    "sklearn",
    "tensorflow",
    "onnx",
    "pytorch",
    "triton",
    "pmml",
)
V1ALPHA2_EXPLAINERS: Final = ("custom", "alibi", "aix")
V1ALPHA2_TRANSFORMERS: Final = ("custom",)


class Logger(ApiModel):
    """Payload logging of an endpoint component."""

    url: str | None = Field(default=None, description="URL of the CloudEvents sink.")
    mode: str | None = Field(
        default=None,
        description="What to log: all, request or response.",
        json_schema_extra={"enum": list(LOGGER_MODES)},
    )


class Batcher(ApiModel):
    """Request batching of an endpoint component."""

    max_batch_size: int | None = Field(default=None, description="Largest batch.")
    max_latency: int | None = Field(default=None, description="Longest wait in milliseconds.")
    timeout: int | None = Field(default=None, description="Batch timeout in seconds.")


class DeploymentSpec(ApiModel):
    """Deployment settings of one component (v1beta1: the component extension and pod fields)."""

    service_account_name: str | None = Field(
        default=None, description="Service account of the pods (storage credentials)."
    )
    min_replicas: int | None = Field(
        default=None, description="Minimum replicas; 0 scales to zero. Defaults to 1."
    )
    max_replicas: int | None = Field(default=None, description="Maximum replicas; 0 = no bound.")
    parallelism: int | None = Field(
        default=None,
        description="Concurrent requests per replica (v1beta1 containerConcurrency).",
    )
    logger: Logger | None = Field(default=None, description="Payload logging.")
    batcher: Batcher | None = Field(default=None, description="Request batching.")


class FrameworkSpec(ApiModel):
    """Fields every v1alpha2 predictor framework has."""

    storage_uri: str | None = Field(default=None, description="Where the model is.")
    runtime_version: str | None = Field(default=None, description="Model-server image tag.")
    resources: ResourceRequirements | None = Field(
        default=None, description="Compute resources; cpu 1 and memory 2Gi by default."
    )


class ThreadedFrameworkSpec(FrameworkSpec):
    """XGBoost and LightGBM: a thread count as well."""

    nthread: int | None = Field(
        default=None, description="Threads of the model server (passed as --nthread)."
    )


class PyTorchSpec(FrameworkSpec):
    """KFServing's pytorchserver with a model class."""

    model_class_name: str | None = Field(
        default=None, description="Python class of the model; defaults to PyTorchModel."
    )


class CustomSpec(ApiModel):
    """A component served by a container of the user's."""

    container: Container = Field(description="The container serving the component.")


class ExplainerFrameworkSpec(ApiModel):
    """Fields of the Alibi and AIX explainers."""

    storage_uri: str | None = Field(default=None, description="Where the explainer artefact is.")
    runtime_version: str | None = Field(default=None, description="Explainer image tag.")
    resources: ResourceRequirements | None = Field(default=None, description="Compute resources.")
    config: dict[str, str] | None = Field(default=None, description="Explainer options.")


class AlibiSpec(ExplainerFrameworkSpec):
    """Alibi explainer."""

    type: str = Field(
        description="Explanation method.", json_schema_extra={"enum": list(ALIBI_TYPES)}
    )


class AIXSpec(ExplainerFrameworkSpec):
    """AIX360 explainer."""

    type: str = Field(
        description="Explanation method.", json_schema_extra={"enum": list(AIX_TYPES)}
    )


class OneOf:
    """A component implemented by exactly one of its ``implementation_fields``."""

    implementation_fields: ClassVar[tuple[str, ...]] = ()

    def implementations(self) -> list[str]:
        return [name for name in self.implementation_fields if getattr(self, name) is not None]


class PredictorSpec(OneOf, DeploymentSpec):
    """The v1alpha2 predictor: exactly one framework or a custom container."""

    implementation_fields: ClassVar[tuple[str, ...]] = V1ALPHA2_PREDICTORS

    custom: CustomSpec | None = Field(default=None, description="Custom predictor container.")
    tensorflow: FrameworkSpec | None = Field(default=None, description="TensorFlow Serving.")
    triton: FrameworkSpec | None = Field(default=None, description="Triton Inference Server.")
    xgboost: ThreadedFrameworkSpec | None = Field(default=None, description="XGBoost server.")
    lightgbm: ThreadedFrameworkSpec | None = Field(default=None, description="LightGBM server.")
    sklearn: FrameworkSpec | None = Field(default=None, description="scikit-learn server.")
    onnx: FrameworkSpec | None = Field(default=None, description="ONNX Runtime server.")
    pytorch: PyTorchSpec | None = Field(default=None, description="PyTorch server.")
    pmml: FrameworkSpec | None = Field(default=None, description="PMML server.")


class ExplainerSpec(OneOf, DeploymentSpec):
    """The v1alpha2 explainer: Alibi, AIX or a custom container."""

    implementation_fields: ClassVar[tuple[str, ...]] = V1ALPHA2_EXPLAINERS

    custom: CustomSpec | None = Field(default=None, description="Custom explainer container.")
    alibi: AlibiSpec | None = Field(default=None, description="Alibi explainer.")
    aix: AIXSpec | None = Field(default=None, description="AIX360 explainer.")


class TransformerSpec(OneOf, DeploymentSpec):
    """The v1alpha2 transformer: a custom container."""

    implementation_fields: ClassVar[tuple[str, ...]] = V1ALPHA2_TRANSFORMERS

    custom: CustomSpec | None = Field(default=None, description="Custom transformer container.")


class EndpointSpec(ApiModel):
    """One endpoint: a predictor, and optionally a transformer and an explainer."""

    predictor: PredictorSpec = Field(description="The model server.")
    explainer: ExplainerSpec | None = Field(default=None, description="Model explanations.")
    transformer: TransformerSpec | None = Field(
        default=None, description="Pre- and post-processing in front of the predictor."
    )


class InferenceServiceSpecV1alpha2(ApiModel):
    """Desired state: the default endpoint (and, refused since v1beta1, a canary endpoint)."""

    default: EndpointSpec = Field(description="The endpoint that serves the model.")
    canary: EndpointSpec | None = Field(
        default=None,
        description=(
            "Not supported: v1beta1 rolls out canaries between revisions of one endpoint. "
            "Use canaryTrafficPercent on a v1beta1 InferenceService instead."
        ),
    )
    canary_traffic_percent: int | None = Field(
        default=None,
        description="Not supported on v1alpha2 (see canary); kept for objects written as v1beta1.",
    )


class StatusConfigurationSpec(StatusModel):
    """Latest revision and host of one component."""

    name: str | None = Field(default=None, description="Latest created revision.")
    host: str | None = Field(default=None, description="Host name of the component.")


class InferenceServiceStatusV1alpha2(StatusModel):
    """Observed state, in v1alpha2's shape, plus v1beta1's ``components`` and ``annotations``.

    The apiserver converts objects through every version that owns fields of them
    (server-side apply's field ownership), so conversion must not lose anything: v1beta1's
    status fields ride along unchanged (clients of v1alpha2 ignore them).
    """

    observed_generation: int | None = Field(default=None, description="Observed generation.")
    conditions: list[Condition] | None = Field(default=None, description="Conditions.")
    url: str | None = Field(default=None, description="External URL.")
    address: Addressable | None = Field(default=None, description="Cluster-internal address.")
    traffic: int | None = Field(
        default=None, description="Percentage of traffic on the rolled-out (default) revision."
    )
    canary_traffic: int | None = Field(
        default=None, description="Percentage of traffic on the canary (latest) revision."
    )
    default: dict[str, StatusConfigurationSpec] | None = Field(
        default=None, description="Status of each component of the default endpoint."
    )
    canary: dict[str, StatusConfigurationSpec] | None = Field(
        default=None, description="Always empty: there is no canary endpoint any more."
    )
    components: dict[str, ComponentStatusSpec] | None = Field(
        default=None, description="v1beta1's status of each component (revisions, traffic)."
    )
    annotations: dict[str, str] | None = Field(
        default=None, description="Extra status information."
    )


class InferenceServiceV1alpha2(Resource):
    """An InferenceService in its v1alpha2 form."""

    api_version: str = Field(
        default=V1ALPHA2_API_VERSION, description="serving.kubeflow.org/v1alpha2."
    )
    kind: str = Field(default="InferenceService", description="InferenceService.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Object metadata.")
    spec: InferenceServiceSpecV1alpha2 = Field(description="Desired state.")
    status: InferenceServiceStatusV1alpha2 | None = Field(
        default=None, description="Observed state."
    )
