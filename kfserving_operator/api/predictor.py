"""The predictor: one model-server framework, or custom containers."""

from __future__ import annotations

from typing import ClassVar, Final

from pydantic import Field

from kfserving_operator.api.components import (
    PROTOCOL_VERSIONS,
    ComponentExtensionSpec,
    OneOfImplementations,
)
from kfserving_operator.api.podspec import ContainerFields, PodSpecFields

# The predictor frameworks in the order they are listed and validated.
FRAMEWORKS: Final = (
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "pmml",
    "lightgbm",
    "paddle",
)
PREDICTOR_FRAMEWORKS: Final = FRAMEWORKS


class PredictorExtensionSpec(ContainerFields):
    """Fields every predictor framework has, plus an inlined core Container."""

    storage_uri: str | None = Field(
        default=None,
        description=(
            "Where the model is: gs://, s3://, pvc://, file://, http(s)://, hdfs://, webhdfs://, "
            "an Azure blob URL or a local path. Downloaded to /mnt/models before start."
        ),
    )
    runtime_version: str | None = Field(
        default=None,
        description="Tag of the model-server image; defaulted from inferenceservice-config.",
    )
    protocol_version: str | None = Field(
        default=None,
        description="Inference protocol: v1 (KFServing) or v2 (KServe/Triton V2).",
        json_schema_extra={"enum": list(PROTOCOL_VERSIONS)},
    )


class SKLearnSpec(PredictorExtensionSpec):
    """scikit-learn model server (v1: sklearnserver, v2: MLServer)."""


class XGBoostSpec(PredictorExtensionSpec):
    """XGBoost model server (v1: xgbserver, v2: MLServer)."""


class TFServingSpec(PredictorExtensionSpec):
    """TensorFlow Serving."""


class TorchServeSpec(PredictorExtensionSpec):
    """PyTorch: the KFServing pytorchserver when modelClassName is set, TorchServe otherwise."""

    model_class_name: str | None = Field(
        default=None,
        description="Python class of the model; selects the KFServing pytorchserver.",
    )


class TritonSpec(PredictorExtensionSpec):
    """NVIDIA Triton Inference Server (v2 protocol)."""


class ONNXRuntimeSpec(PredictorExtensionSpec):
    """ONNX Runtime server; storageUri names a .onnx file or a directory."""


class PMMLSpec(PredictorExtensionSpec):
    """PMML model server (single worker)."""


class LightGBMSpec(PredictorExtensionSpec):
    """LightGBM model server."""


class PaddleServerSpec(PredictorExtensionSpec):
    """PaddlePaddle model server."""


class PredictorSpec(OneOfImplementations, PodSpecFields, ComponentExtensionSpec):
    """The model server: exactly one framework, or custom containers."""

    framework_fields: ClassVar[tuple[str, ...]] = FRAMEWORKS

    sklearn: SKLearnSpec | None = Field(default=None, description="scikit-learn predictor.")
    xgboost: XGBoostSpec | None = Field(default=None, description="XGBoost predictor.")
    tensorflow: TFServingSpec | None = Field(
        default=None, description="TensorFlow Serving predictor."
    )
    pytorch: TorchServeSpec | None = Field(default=None, description="PyTorch predictor.")
    triton: TritonSpec | None = Field(default=None, description="Triton Inference Server.")
    onnx: ONNXRuntimeSpec | None = Field(default=None, description="ONNX Runtime predictor.")
    pmml: PMMLSpec | None = Field(default=None, description="PMML predictor.")
    lightgbm: LightGBMSpec | None = Field(default=None, description="LightGBM predictor.")
    paddle: PaddleServerSpec | None = Field(default=None, description="PaddlePaddle predictor.")

    def framework(self) -> PredictorExtensionSpec | None:
        """The framework spec when the predictor uses exactly one framework."""
        impl = self.implementation()
        if impl is None or not isinstance(impl.spec, PredictorExtensionSpec):
            return None
        return impl.spec
