"""The defaulting webhook's logic: fill what KFServing's defaulter fills (reference section 2.1).

Pure: takes an InferenceService and the operator config, returns a new InferenceService.
Applying it twice gives the same result as applying it once.

Per component with exactly one implementation (others are left alone; validation reports them):

* the model container is named ``kfserving-container`` (custom: ``containers[0]``);
* ``protocolVersion`` defaults to ``v1`` for sklearn, xgboost and pytorch;
* ``runtimeVersion`` defaults from the config, by protocol and GPU as KFServing does;
* cpu and memory requests and limits default from ``inferenceService.resource``;
* ``logger.mode`` defaults to ``all`` (deliberate fix: KFServing left it empty and then its
  validator rejected the object).

A second deliberate fix: when only one of request/limit is set and the configured default for
the other would make request > limit (an invalid pod), the missing side takes the value the
user gave instead of the config default.
"""

from __future__ import annotations

from decimal import Decimal

from kfserving_operator.api.components import (
    CUSTOM,
    PROTOCOL_V1,
    PROTOCOL_V2,
    ComponentExtensionSpec,
    Implementation,
)
from kfserving_operator.api.config import OperatorConfig, PredictorConfig
from kfserving_operator.api.constants import DEFAULT_LOGGER_MODE, MODEL_CONTAINER_NAME
from kfserving_operator.api.explainer import ExplainerExtensionSpec
from kfserving_operator.api.inference_service import InferenceService
from kfserving_operator.api.podspec import ContainerFields, ResourceRequirements
from kfserving_operator.api.predictor import PredictorExtensionSpec, TorchServeSpec
from kfserving_operator.api.quantity import QuantityError, parse_quantity

# Frameworks whose protocolVersion is defaulted (the others have one fixed protocol).
PROTOCOL_DEFAULTED: tuple[str, ...] = ("sklearn", "xgboost", "pytorch")


def default_inference_service(isvc: InferenceService, config: OperatorConfig, *,
                              in_place: bool = False) -> InferenceService:
    """Return a defaulted copy of ``isvc``; ``isvc`` itself is not modified, unless
    ``in_place`` (for a model nobody else holds: a deep copy costs as much as the defaulting)."""
    result = isvc if in_place else isvc.model_copy(deep=True)
    for component_name, component in result.components():
        impl = component.implementation()
        if impl is not None:
            _default_implementation(component_name, impl, config)
        _default_extension(component)
    return result


def _default_extension(component: ComponentExtensionSpec) -> None:
    if component.logger is not None and not component.logger.mode:
        component.logger.mode = DEFAULT_LOGGER_MODE


def _default_implementation(component: str, impl: Implementation, config: OperatorConfig) -> None:
    container: ContainerFields = impl.spec
    container.name = MODEL_CONTAINER_NAME
    if isinstance(impl.spec, PredictorExtensionSpec):
        _default_predictor_framework(impl.name, impl.spec, config)
    elif isinstance(impl.spec, ExplainerExtensionSpec) and impl.name != CUSTOM:
        explainer_config = getattr(config.explainers, impl.name)
        if impl.spec.runtime_version is None:
            impl.spec.runtime_version = explainer_config.default_image_version
    _default_resources(container, config)


def _default_predictor_framework(
    framework: str, spec: PredictorExtensionSpec, config: OperatorConfig
) -> None:
    if spec.protocol_version is None and framework in PROTOCOL_DEFAULTED:
        spec.protocol_version = PROTOCOL_V1
    if spec.runtime_version is None:
        spec.runtime_version = _runtime_version(framework, spec, config)


def predictor_server_config(
    framework: str, spec: PredictorExtensionSpec, config: OperatorConfig
) -> PredictorConfig:
    """The configured server of a predictor framework, chosen by protocol (and modelClassName).

    pytorch: v2, or v1 without modelClassName, is TorchServe (``predictors.pytorch.v2``);
    v1 with modelClassName is the KFServing pytorchserver (``predictors.pytorch.v1``).
    """
    predictors = config.predictors
    protocol = spec.protocol_version or PROTOCOL_V1
    if framework in ("sklearn", "xgboost"):
        versions = getattr(predictors, framework)
        server: PredictorConfig = versions.v2 if protocol == PROTOCOL_V2 else versions.v1
        return server
    if framework == "pytorch":
        has_class = isinstance(spec, TorchServeSpec) and bool(spec.model_class_name)
        if protocol == PROTOCOL_V1 and has_class:
            return predictors.pytorch.v1
        return predictors.pytorch.v2
    single: PredictorConfig = getattr(predictors, framework)
    return single


def _runtime_version(framework: str, spec: PredictorExtensionSpec, config: OperatorConfig) -> str:
    server = predictor_server_config(framework, spec, config)
    gpu_version = server.default_gpu_image_version
    if framework in ("tensorflow", "pytorch") and spec.has_gpu() and gpu_version:
        return gpu_version
    return server.default_image_version


def _quantity_or_none(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def _exceeds(request: str, limit: str) -> bool:
    """True when both quantities parse and the request exceeds the limit."""
    request_value, limit_value = _quantity_or_none(request), _quantity_or_none(limit)
    return request_value is not None and limit_value is not None and request_value > limit_value


def _default_resources(container: ContainerFields, config: OperatorConfig) -> None:
    defaults = config.inference_service.resource
    resources = container.resources or ResourceRequirements()
    requests = dict(resources.requests or {})
    limits = dict(resources.limits or {})
    for resource, default_request, default_limit in (
        ("cpu", defaults.cpu_request, defaults.cpu_limit),
        ("memory", defaults.memory_request, defaults.memory_limit),
    ):
        # A default never makes request > limit against the user's own value: in that case
        # the missing side copies the user's value instead.
        user_request, user_limit = requests.get(resource), limits.get(resource)
        if user_request is None:
            requests[resource] = (user_limit if user_limit is not None
                                  and _exceeds(default_request, user_limit) else default_request)
        if user_limit is None:
            limits[resource] = (user_request if user_request is not None
                                and _exceeds(user_request, default_limit) else default_limit)
    resources.requests = requests
    resources.limits = limits
    container.resources = resources
