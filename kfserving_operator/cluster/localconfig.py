"""The ``inferenceservice-config`` for the lane's real node.

The shipped defaults name KServe's published images, which nothing here can pull. On the
lane the same keys name the images ``hack/build-node-images.sh`` built and the node
imported: the storage initializer, sklearn v1 (the ``kserve`` package's ModelServer), sklearn
v2 (MLServer) and xgboost v1. Model containers also get smaller default requests, so that a
canary's two revisions and a transformer fit on a two-core node beside the lane itself, and
raw deployment mode's Ingresses name the lane's Traefik. Everything else is the shipped
default.
"""

from __future__ import annotations

from kfserving_operator.api.config import (
    DefaultResources,
    InferenceServiceDefaults,
    OperatorConfig,
    PredictorConfig,
    StorageInitializerConfig,
)
from kfserving_operator.cluster.dataplane import INGRESS_CLASS_NAME

LOCAL_REGISTRY = "kind.local/kfserving"
LOCAL_TAG = "lane"
STORAGE_INITIALIZER_IMAGE = f"{LOCAL_REGISTRY}/storage-initializer:{LOCAL_TAG}"


def _local(predictor: PredictorConfig, image: str) -> PredictorConfig:
    return predictor.model_copy(update={"image": f"{LOCAL_REGISTRY}/{image}",
                                        "default_image_version": LOCAL_TAG})


def local_operator_config() -> OperatorConfig:
    """The shipped config with the lane's images and small default requests."""
    config = OperatorConfig()
    sklearn = config.predictors.sklearn.model_copy(update={
        "v1": _local(config.predictors.sklearn.v1, "sklearnserver"),
        "v2": _local(config.predictors.sklearn.v2, "mlserver"),
    })
    xgboost = config.predictors.xgboost.model_copy(update={
        "v1": _local(config.predictors.xgboost.v1, "xgbserver"),
    })
    predictors = config.predictors.model_copy(update={"sklearn": sklearn, "xgboost": xgboost})
    # Raw deployment mode's Ingresses go to the lane's Traefik.
    ingress = config.ingress.model_copy(update={"ingress_class_name": INGRESS_CLASS_NAME})
    return config.model_copy(update={
        "predictors": predictors,
        "ingress": ingress,
        "storage_initializer": StorageInitializerConfig(image=STORAGE_INITIALIZER_IMAGE),
        "inference_service": InferenceServiceDefaults(resource=DefaultResources(
            cpu_request="100m", cpu_limit="1", memory_request="256Mi", memory_limit="1Gi")),
    })
