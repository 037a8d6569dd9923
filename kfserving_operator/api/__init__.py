"""The serving.kubeflow.org/v1beta1 InferenceService API: models, defaulting, validation, CRD.

Pure code: nothing here talks to a cluster or imports kopf.
"""

from kfserving_operator.api.base import ApiModel
from kfserving_operator.api.components import (
    CUSTOM,
    PROTOCOL_VERSIONS,
    SCALE_METRICS,
    BatcherSpec,
    ComponentExtensionSpec,
    Implementation,
    LoggerSpec,
)
from kfserving_operator.api.config import OperatorConfig, parse_operator_config
from kfserving_operator.api.constants import LOGGER_MODES
from kfserving_operator.api.defaulting import default_inference_service, predictor_server_config
from kfserving_operator.api.explainer import (
    EXPLAINER_FRAMEWORKS,
    AIXExplainerSpec,
    AlibiExplainerSpec,
    ARTExplainerSpec,
    ExplainerExtensionSpec,
    ExplainerSpec,
)
from kfserving_operator.api.field_errors import FieldError, parse_inference_service
from kfserving_operator.api.inference_service import (
    ComponentSpec,
    InferenceService,
    InferenceServiceSpec,
    ObjectMeta,
)
from kfserving_operator.api.podspec import (
    Container,
    ContainerFields,
    EnvVar,
    PodSpecFields,
    ResourceRequirements,
)
from kfserving_operator.api.predictor import (
    FRAMEWORKS,
    LightGBMSpec,
    ONNXRuntimeSpec,
    PaddleServerSpec,
    PMMLSpec,
    PredictorExtensionSpec,
    PredictorSpec,
    SKLearnSpec,
    TFServingSpec,
    TorchServeSpec,
    TritonSpec,
    XGBoostSpec,
)
from kfserving_operator.api.status import (
    Addressable,
    ComponentStatusSpec,
    Condition,
    InferenceServiceStatus,
    TrafficTarget,
)
from kfserving_operator.api.transformer import TransformerSpec
from kfserving_operator.api.validation import (
    validate_inference_service,
    validate_inference_service_dict,
)

__all__ = [
    "CUSTOM",
    "EXPLAINER_FRAMEWORKS",
    "FRAMEWORKS",
    "LOGGER_MODES",
    "PROTOCOL_VERSIONS",
    "SCALE_METRICS",
    "AIXExplainerSpec",
    "ARTExplainerSpec",
    "Addressable",
    "AlibiExplainerSpec",
    "ApiModel",
    "BatcherSpec",
    "ComponentExtensionSpec",
    "ComponentSpec",
    "ComponentStatusSpec",
    "Condition",
    "Container",
    "ContainerFields",
    "EnvVar",
    "ExplainerExtensionSpec",
    "ExplainerSpec",
    "FieldError",
    "Implementation",
    "InferenceService",
    "InferenceServiceSpec",
    "InferenceServiceStatus",
    "LightGBMSpec",
    "LoggerSpec",
    "ONNXRuntimeSpec",
    "ObjectMeta",
    "OperatorConfig",
    "PMMLSpec",
    "PaddleServerSpec",
    "PodSpecFields",
    "PredictorExtensionSpec",
    "PredictorSpec",
    "ResourceRequirements",
    "SKLearnSpec",
    "TFServingSpec",
    "TorchServeSpec",
    "TrafficTarget",
    "TransformerSpec",
    "TritonSpec",
    "XGBoostSpec",
    "default_inference_service",
    "parse_inference_service",
    "parse_operator_config",
    "predictor_server_config",
    "validate_inference_service",
    "validate_inference_service_dict",
]
