"""The operator configuration: the ``inferenceservice-config`` ConfigMap as typed data.

Every value of the ConfigMap is a JSON string under one top-level key (``predictors``,
``ingress``, ...), as in KFServing. The defaults live here and only here. Parsing is
per key and forgiving in one precise way: a key that is missing or malformed is reported
as a :class:`ConfigProblem` and keeps its previous good value (the defaults at start), so
one typo never takes the whole operator down and never silently resets unrelated keys.
A key that is present and valid is merged over the defaults, so a partial object such as
``{"image": "my/initializer"}`` changes only the image.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from kfserving_operator.api.base import ApiModel
from kfserving_operator.api.constants import SERVERLESS
from kfserving_operator.api.deployment_mode import MODE_SPELLINGS, normalise_mode
from kfserving_operator.api.domain_template import (
    DEFAULT_DOMAIN_TEMPLATE,
    domain_template_error,
)
from kfserving_operator.api.quantity import QuantityError, parse_quantity

CONFIGMAP_NAME = "inferenceservice-config"
# The operator's own copy of the config in force, so that a restart while the user's ConfigMap
# is broken or deleted carries on with the last good config, not with the built-in defaults.
LAST_GOOD_CONFIGMAP_NAME = "inferenceservice-config-last-good"

# Runtime images are pinned to KServe v0.15.2 where KServe still ships that server; the
# v1beta1 frameworks KServe has since dropped (the kfserving pytorchserver, alibi and aix
# explainers) keep their last published tags. Each takes the container arguments listed in
# the reference (section 4.3), which the builders generate.
KSERVE_VERSION = "v0.15.2"
MLSERVER_VERSION = "1.5.0"


class ConfigModel(ApiModel):
    """Config objects: camelCase keys, unknown keys ignored so newer ConfigMaps still load."""

    model_config = ApiModel.model_config | {"extra": "ignore"}


# Config values are small objects; anything nested deeper is a mistake (or an attack), and
# past Python's recursion limit it could not even be decoded.
MAX_VALUE_DEPTH = 32


def _check_quantity(value: str) -> str:
    try:
        amount = parse_quantity(value)
    except QuantityError as exc:
        raise ValueError(str(exc)) from exc
    if amount < 0:
        raise ValueError(f"must not be negative; got {value!r}")
    return value


def _requests_within_limits(settings: ResourceSettings | DefaultResources) -> None:
    """Kubernetes refuses a container whose request exceeds its limit: so does the config."""
    for resource in ("cpu", "memory"):
        request = getattr(settings, f"{resource}_request")
        limit = getattr(settings, f"{resource}_limit")
        if parse_quantity(request) > parse_quantity(limit):
            raise ValueError(
                f"{resource}Request ({request}) must not exceed {resource}Limit ({limit}): "
                "Kubernetes would refuse every pod that gets this container")


class ResourceSettings(ConfigModel):
    """CPU and memory requests and limits of a container the operator injects."""

    cpu_request: str = "100m"
    cpu_limit: str = "1"
    memory_request: str = "100Mi"
    memory_limit: str = "1Gi"

    @field_validator("cpu_request", "cpu_limit", "memory_request", "memory_limit")
    @classmethod
    def _quantities(cls, value: str) -> str:
        return _check_quantity(value)

    @model_validator(mode="after")
    def _request_within_limit(self) -> ResourceSettings:
        _requests_within_limits(self)
        return self

    def requirements(self) -> dict[str, dict[str, str]]:
        """The settings as a core ``ResourceRequirements`` dict."""
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


class PredictorConfig(ConfigModel):
    """One model server: image, default tags and capabilities."""

    image: str
    default_image_version: str
    default_gpu_image_version: str = ""
    default_timeout: str = ""
    multi_model_server: bool = False
    supported_frameworks: list[str] = Field(default_factory=list)


class ProtocolPredictorConfig(ConfigModel):
    """A framework with one server per inference protocol (v1 KFServing, v2 MLServer/TorchServe)."""

    v1: PredictorConfig
    v2: PredictorConfig


class PredictorsConfig(ConfigModel):
    """The ``predictors`` key."""

    tensorflow: PredictorConfig = PredictorConfig(
        image="tensorflow/serving",
        default_image_version="2.6.2",
        default_gpu_image_version="2.6.2-gpu",
        default_timeout="60",
        supported_frameworks=["tensorflow"],
    )
    onnx: PredictorConfig = PredictorConfig(
        image="mcr.microsoft.com/onnxruntime/server",
        default_image_version="v1.0.0",
        supported_frameworks=["onnx"],
    )
    sklearn: ProtocolPredictorConfig = ProtocolPredictorConfig(
        v1=PredictorConfig(
            image="kserve/sklearnserver",
            default_image_version=KSERVE_VERSION,
            multi_model_server=True,
            supported_frameworks=["sklearn"],
        ),
        v2=PredictorConfig(
            image="docker.io/seldonio/mlserver",
            default_image_version=MLSERVER_VERSION,
            supported_frameworks=["sklearn"],
        ),
    )
    xgboost: ProtocolPredictorConfig = ProtocolPredictorConfig(
        v1=PredictorConfig(
            image="kserve/xgbserver",
            default_image_version=KSERVE_VERSION,
            multi_model_server=True,
            supported_frameworks=["xgboost"],
        ),
        v2=PredictorConfig(
            image="docker.io/seldonio/mlserver",
            default_image_version=MLSERVER_VERSION,
            supported_frameworks=["xgboost"],
        ),
    )
    pytorch: ProtocolPredictorConfig = ProtocolPredictorConfig(
        v1=PredictorConfig(
            image="kfserving/pytorchserver",
            default_image_version="v0.6.1",
            default_gpu_image_version="v0.6.1-gpu",
            supported_frameworks=["pytorch"],
        ),
        v2=PredictorConfig(
            image="pytorch/torchserve-kfs",
            default_image_version="0.9.0",
            default_gpu_image_version="0.9.0-gpu",
            supported_frameworks=["pytorch"],
        ),
    )
    triton: PredictorConfig = PredictorConfig(
        image="nvcr.io/nvidia/tritonserver",
        default_image_version="23.05-py3",
        multi_model_server=True,
        supported_frameworks=["tensorrt", "tensorflow", "onnx", "pytorch", "caffe2"],
    )
    pmml: PredictorConfig = PredictorConfig(
        image="kserve/pmmlserver",
        default_image_version=KSERVE_VERSION,
        supported_frameworks=["pmml"],
    )
    lightgbm: PredictorConfig = PredictorConfig(
        image="kserve/lgbserver",
        default_image_version=KSERVE_VERSION,
        supported_frameworks=["lightgbm"],
    )
    paddle: PredictorConfig = PredictorConfig(
        image="kserve/paddleserver",
        default_image_version=KSERVE_VERSION,
        supported_frameworks=["paddle"],
    )


class ExplainerConfig(ConfigModel):
    """One explainer server."""

    image: str
    default_image_version: str


class ExplainersConfig(ConfigModel):
    """The ``explainers`` key."""

    alibi: ExplainerConfig = ExplainerConfig(
        image="kserve/alibi-explainer", default_image_version="v0.11.2"
    )
    aix: ExplainerConfig = ExplainerConfig(
        image="kserve/aix-explainer", default_image_version="v0.10.1"
    )
    art: ExplainerConfig = ExplainerConfig(
        image="kserve/art-explainer", default_image_version=KSERVE_VERSION
    )


class StorageInitializerConfig(ResourceSettings):
    """The ``storageInitializer`` key: the init container that downloads the model."""

    image: str = f"kserve/storage-initializer:{KSERVE_VERSION}"


class GCSCredentialsConfig(ConfigModel):
    """Where a GCS service-account key sits in a Secret."""

    gcs_credential_file_name: str = "gcloud-application-credentials.json"


class S3CredentialsConfig(ConfigModel):
    """Secret key names and cluster-wide fallbacks for S3."""

    s3_access_key_id_name: str = Field(default="AWS_ACCESS_KEY_ID", alias="s3AccessKeyIDName")
    s3_secret_access_key_name: str = "AWS_SECRET_ACCESS_KEY"
    s3_endpoint: str = ""
    s3_use_https: str = ""
    s3_region: str = ""
    s3_verify_ssl: str = Field(default="", alias="s3VerifySSL")


class CredentialsConfig(ConfigModel):
    """The ``credentials`` key."""

    gcs: GCSCredentialsConfig = GCSCredentialsConfig()
    s3: S3CredentialsConfig = S3CredentialsConfig()


DEFAULT_GATEWAY = "kfserving-system/kfserving-ingress-gateway"
GATEWAY_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")


class IngressConfig(ConfigModel):
    """The ``ingress`` key: gateways, the services behind them, and how URLs are built."""

    ingress_gateway: str = "knative-serving/knative-ingress-gateway"
    ingress_service: str = "istio-ingressgateway.istio-system.svc.cluster.local"
    local_gateway: str = "knative-serving/knative-local-gateway"
    local_gateway_service: str = "knative-local-gateway.istio-system.svc.cluster.local"
    ingress_domain: str = "example.com"
    url_scheme: str = "http"
    cluster_domain: str = "cluster.local"
    # Raw deployment mode only (KServe's keys; KFServing 0.6.1 ignores them).
    domain_template: str = DEFAULT_DOMAIN_TEMPLATE
    ingress_class_name: str | None = None
    disable_ingress_creation: bool = False
    enable_gateway_api: bool = False
    kserve_ingress_gateway: str = DEFAULT_GATEWAY
    # HTTPRoute ``timeouts.request``; none unless set (some gateways refuse the field).
    http_route_timeout: str | None = None

    @field_validator("ingress_gateway", "ingress_service", "local_gateway", "local_gateway_service")
    @classmethod
    def _required(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("domain_template")
    @classmethod
    def _template(cls, value: str) -> str:
        problem = domain_template_error(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("kserve_ingress_gateway")
    @classmethod
    def _gateway(cls, value: str) -> str:
        namespace, _, name = value.partition("/")
        if not namespace or not name or "/" in name:
            raise ValueError(f"must be <namespace>/<name> of a Gateway; got {value!r}")
        return value

    @field_validator("http_route_timeout")
    @classmethod
    def _timeout(cls, value: str | None) -> str | None:
        if value is not None and not GATEWAY_DURATION.match(value):
            raise ValueError(f"must be a Gateway API duration such as 60s or 1m30s; got {value!r}")
        return value

    @field_validator("url_scheme")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if value not in {"http", "https"}:
            raise ValueError("must be http or https")
        return value


class DeployConfig(ConfigModel):
    """The ``deploy`` key: the deployment mode of InferenceServices without the annotation."""

    default_deployment_mode: str = SERVERLESS

    @field_validator("default_deployment_mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        mode = normalise_mode(value)
        if mode is None:
            raise ValueError(f"must be one of {', '.join(MODE_SPELLINGS)}; got {value!r}")
        return mode


class LoggerConfig(ResourceSettings):
    """The ``logger`` key: payload logging through the agent sidecar."""

    image: str = f"kserve/agent:{KSERVE_VERSION}"
    default_url: str = "http://default-broker"


class BatcherConfig(ResourceSettings):
    """The ``batcher`` key."""

    image: str = f"kserve/agent:{KSERVE_VERSION}"
    cpu_request: str = "1"
    memory_request: str = "1Gi"


class AgentConfig(ResourceSettings):
    """The ``agent`` key: image and resources of the injected ``agent`` container."""

    image: str = f"kserve/agent:{KSERVE_VERSION}"


class DefaultResources(ConfigModel):
    """Resource requests and limits the defaulter gives a model container that sets none."""

    cpu_request: str = "1"
    cpu_limit: str = "1"
    memory_request: str = "2Gi"
    memory_limit: str = "2Gi"

    @field_validator("cpu_request", "cpu_limit", "memory_request", "memory_limit")
    @classmethod
    def _quantities(cls, value: str) -> str:
        return _check_quantity(value)

    @model_validator(mode="after")
    def _request_within_limit(self) -> DefaultResources:
        _requests_within_limits(self)
        return self


class InferenceServiceDefaults(ConfigModel):
    """The ``inferenceService`` key (from later KServe): defaults for model containers."""

    resource: DefaultResources = DefaultResources()


class OperatorConfig(ConfigModel):
    """The whole operator configuration. ``OperatorConfig()`` is the shipped default."""

    predictors: PredictorsConfig = PredictorsConfig()
    explainers: ExplainersConfig = ExplainersConfig()
    transformers: dict[str, Any] = Field(default_factory=dict)
    storage_initializer: StorageInitializerConfig = StorageInitializerConfig()
    credentials: CredentialsConfig = CredentialsConfig()
    ingress: IngressConfig = IngressConfig()
    logger: LoggerConfig = LoggerConfig()
    batcher: BatcherConfig = BatcherConfig()
    agent: AgentConfig = AgentConfig()
    inference_service: InferenceServiceDefaults = InferenceServiceDefaults()
    deploy: DeployConfig = DeployConfig()

    def to_configmap_data(self) -> dict[str, str]:
        """The config as ConfigMap ``data``: one JSON string per key, like the shipped one."""
        wire = self.model_dump(by_alias=True, mode="json")
        return {key: json.dumps(value, indent=2, sort_keys=True) for key, value in wire.items()}


def last_good_configmap(config: OperatorConfig, namespace: str) -> dict[str, Any]:
    """The operator-owned ConfigMap that persists ``config`` across restarts."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": LAST_GOOD_CONFIGMAP_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "kfserving-operator"},
            "annotations": {
                "serving.kubeflow.org/description": (
                    f"The last good {CONFIGMAP_NAME}, written by the operator and read at its "
                    f"start. Edit {CONFIGMAP_NAME}, not this."),
            },
        },
        "data": config.to_configmap_data(),
    }


# ConfigMap key -> attribute of OperatorConfig, in file order.
CONFIG_KEYS: dict[str, str] = {
    field.alias or name: name for name, field in OperatorConfig.model_fields.items()
}
# Keys whose absence is normal: KFServing's own ConfigMap never had them.
OPTIONAL_KEYS = frozenset({"transformers", "inferenceService", "deploy"})


@dataclass(frozen=True)
class ConfigProblem:
    """One key of the ConfigMap that could not be used, and why."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{CONFIGMAP_NAME} key {self.key!r}: {self.message}"


@dataclass(frozen=True)
class ConfigParseResult:
    """The config to use, and the problems found while reading the ConfigMap."""

    config: OperatorConfig
    problems: tuple[ConfigProblem, ...]


def _merge(base: Any, override: Any) -> Any:
    """Deep-merge JSON objects; anything that is not an object replaces the base."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base.get(key), value)
        return merged
    return override


_TOO_DEEP = object()


def _depth_exceeds(value: Any, limit: int) -> bool:
    """True when ``value`` nests objects or arrays more than ``limit`` levels (iteratively)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(
            item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(value)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_operator_config(
    data: dict[str, str] | None, previous: OperatorConfig | None = None
) -> ConfigParseResult:
    """Read ConfigMap ``data`` into an :class:`OperatorConfig`.

    ``previous`` is the last good config (the defaults when omitted): every key that is missing
    or malformed keeps its value from there, and is reported.
    """
    previous = previous or OperatorConfig()
    data = data or {}
    problems: list[ConfigProblem] = []
    previous_wire = previous.model_dump(by_alias=True, mode="json")
    default_wire = OperatorConfig().model_dump(by_alias=True, mode="json")
    result: dict[str, Any] = {}
    for key in CONFIG_KEYS:
        result[key] = previous_wire[key]
        if key not in data:
            if key not in OPTIONAL_KEYS:
                problems.append(ConfigProblem(key, "missing; keeping the last good value"))
            continue
        try:
            raw = json.loads(data[key])
        except json.JSONDecodeError as exc:
            problems.append(
                ConfigProblem(key, f"not valid JSON ({exc}); keeping the last good value")
            )
            continue
        except RecursionError:
            raw = _TOO_DEEP  # deeper than the decoder goes
        if raw is _TOO_DEEP or _depth_exceeds(raw, MAX_VALUE_DEPTH):
            problems.append(ConfigProblem(
                key, f"nested deeper than {MAX_VALUE_DEPTH} levels; keeping the last good value"))
            continue
        if not isinstance(raw, dict):
            problems.append(
                ConfigProblem(key, "must be a JSON object; keeping the last good value")
            )
            continue
        candidate = _merge(default_wire[key], raw)
        try:
            OperatorConfig.model_validate({key: candidate})
        except ValidationError as exc:
            problems.append(
                ConfigProblem(key, f"{_describe(exc)}; keeping the last good value")
            )
            continue
        result[key] = candidate
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    for key in unknown:
        problems.append(ConfigProblem(key, "unknown key, ignored"))
    return ConfigParseResult(OperatorConfig.model_validate(result), tuple(problems))
