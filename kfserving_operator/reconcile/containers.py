"""The model-server container of each component (reference section 4.3).

``component_container`` turns a defaulted component spec into the core Container (a plain
dict) that replaces ``containers[0]`` of the revision's pod spec. Generated arguments come
first and the user's ``args`` follow, except for custom transformers and explainers, where
the user's arguments come first and the missing ones are appended.

Deliberate departures from KFServing 0.6.1, all of them about not dropping or breaking what
the user wrote:

* ``--workers`` (and Triton's ``--http-thread-count``) is only generated for a
  ``containerConcurrency`` above 0: 0 means "unlimited" to Knative and ``--workers=0`` would
  make the Python servers fail.
* AIX and ART explainers keep the user's container fields (image, env, probes, ...) instead
  of being rebuilt from scratch with only the resources kept.
* Generated MLServer environment variables never duplicate one the user set (the user's
  value wins); custom explainers get ``--http_port`` only when it is missing.
"""

from __future__ import annotations

import posixpath
from typing import Any, Final
from urllib.parse import urlparse

from kfserving_operator.api.components import CUSTOM, PROTOCOL_V1, PROTOCOL_V2
from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.constants import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HTTP_PORT,
    EXPLAINER,
    MODEL_CONTAINER_NAME,
    MODEL_MOUNT_PATH,
    NTHREAD_FRAMEWORKS,
    PREDICTOR,
    STORAGE_URI_ENV,
    TRANSFORMER,
    knative_service_name,
)
from kfserving_operator.api.defaulting import predictor_server_config
from kfserving_operator.api.explainer import ExplainerExtensionSpec, ExplainerSpec
from kfserving_operator.api.inference_service import ComponentSpec, InferenceService
from kfserving_operator.api.podspec import ContainerFields
from kfserving_operator.api.predictor import (
    PredictorExtensionSpec,
    PredictorSpec,
    TorchServeSpec,
)
from kfserving_operator.api.quantity import QuantityError, ceil_cores
from kfserving_operator.api.transformer import TransformerSpec
from kfserving_operator.reconcile.common import JsonDict

PROTOCOL_ENV: Final = "PROTOCOL"
MULTI_MODEL_SERVER_ENV: Final = "MULTI_MODEL_SERVER"

TENSORFLOW_ENTRYPOINT: Final = "/usr/bin/tensorflow_model_server"
DEFAULT_TENSORFLOW_TIMEOUT_SECONDS: Final = 60
DEFAULT_ONNX_FILE: Final = "model.onnx"

MLSERVER_IMPLEMENTATIONS: Final = {
    "sklearn": "mlserver_sklearn.SKLearnModel",
    "xgboost": "mlserver_xgboost.XGBoostModel",
}
# Frameworks whose v1 server is one of the KFServing Python servers (--model_name/--model_dir).
PYTHON_SERVERS: Final = ("sklearn", "xgboost", "lightgbm", "paddle", "pmml")
WORKERS_FRAMEWORKS: Final = ("sklearn", "xgboost", "lightgbm", "paddle")

# Fields of a framework spec that describe the container (everything else is KFServing's).
_CONTAINER_FIELDS: Final = frozenset(ContainerFields.model_fields)


# ------------------------------------------------------------------------------------------
# Facts about a component that several builders need


def predictor_host(isvc: InferenceService) -> str:
    """``<isvc>-predictor-default.<namespace>``: where transformers and explainers send to."""
    return f"{knative_service_name(isvc.name, PREDICTOR)}.{isvc.namespace}"


def storage_uri(spec: ComponentSpec) -> str | None:
    """The model location of a component: the framework's storageUri, or STORAGE_URI env."""
    impl = spec.implementation()
    if impl is None:
        return None
    if impl.name == CUSTOM:
        value = impl.spec.env_value(STORAGE_URI_ENV)
        return value or None
    uri = getattr(impl.spec, "storage_uri", None)
    return uri if isinstance(uri, str) and uri else None


def predictor_protocol(spec: PredictorSpec) -> str:
    """The inference protocol of the predictor: v1 or v2."""
    impl = spec.implementation()
    if impl is None:
        return PROTOCOL_V1
    if impl.name == CUSTOM:
        return impl.spec.env_value(PROTOCOL_ENV) or PROTOCOL_V1
    if impl.name == "triton":
        return PROTOCOL_V2
    protocol = getattr(impl.spec, "protocol_version", None)
    return protocol if protocol in (PROTOCOL_V1, PROTOCOL_V2) else PROTOCOL_V1


def is_multi_model(spec: PredictorSpec, config: OperatorConfig) -> bool:
    """IsMMS: a multi-model-capable server and no storageUri (reference section 4.6)."""
    impl = spec.implementation()
    if impl is None or storage_uri(spec) is not None:
        return False
    if impl.name == CUSTOM:
        return (impl.spec.env_value(MULTI_MODEL_SERVER_ENV) or "").lower() == "true"
    server = predictor_server_config(impl.name, impl.spec, config)
    return server.multi_model_server


# ------------------------------------------------------------------------------------------
# Helpers


def _has_arg(args: list[str], name: str) -> bool:
    """True when ``name`` appears as ``name`` or ``name=value`` (KFServing's IncludesArg)."""
    return any(arg == name or arg.startswith(name + "=") for arg in args)


def _container_base(spec: ContainerFields) -> JsonDict:
    """The core Container fields the user wrote on a framework spec or custom container."""
    wire: JsonDict = spec.model_dump(
        by_alias=True, exclude_none=True, mode="json", include=set(_CONTAINER_FIELDS)
    )
    wire["name"] = spec.name or MODEL_CONTAINER_NAME
    return wire


def _image(spec: ContainerFields, image: str, version: str | None, default: str) -> str:
    return spec.image or f"{image}:{version or default}"


def _workers(cc: int | None) -> int | None:
    return cc if cc is not None and cc > 0 else None


def _cpu_cores(spec: ContainerFields) -> int:
    limits = spec.resources.limits if spec.resources else None
    cpu = (limits or {}).get("cpu")
    if cpu is None:
        return 1
    try:
        return ceil_cores(cpu)
    except QuantityError:
        return 1


def _onnx_file(uri: str | None) -> str:
    if not uri:
        return DEFAULT_ONNX_FILE
    path = urlparse(uri).path if "://" in uri else uri
    base = posixpath.basename(path.rstrip("/"))
    if "." in base.lstrip("."):
        return base
    return DEFAULT_ONNX_FILE


def _with_env(container: JsonDict, generated: list[tuple[str, str]]) -> None:
    """Append generated env vars after the user's, skipping names the user already set."""
    env: list[Any] = list(container.get("env") or [])
    taken = {item.get("name") for item in env if isinstance(item, dict)}
    for name, value in generated:
        if name not in taken:
            env.append({"name": name, "value": value})
    if env:
        container["env"] = env


# ------------------------------------------------------------------------------------------
# Predictor


def _predictor_framework_container(
    isvc: InferenceService, framework: str, spec: PredictorExtensionSpec, cc: int | None,
    timeout: int | None, config: OperatorConfig,
) -> JsonDict:  # fmt: skip
    server = predictor_server_config(framework, spec, config)
    container = _container_base(spec)
    container["image"] = _image(
        spec, server.image, spec.runtime_version, server.default_image_version
    )
    user_args = list(spec.args or [])
    name = isvc.name
    protocol = spec.protocol_version or PROTOCOL_V1
    workers = _workers(cc)
    args: list[str]

    if framework in MLSERVER_IMPLEMENTATIONS and protocol == PROTOCOL_V2:
        generated = [
            ("MLSERVER_HTTP_PORT", str(DEFAULT_HTTP_PORT)),
            ("MLSERVER_GRPC_PORT", str(DEFAULT_GRPC_PORT)),
            ("MODELS_DIR", MODEL_MOUNT_PATH),
        ]
        if not spec.storage_uri:
            generated.append(("MLSERVER_LOAD_MODELS_AT_STARTUP", "false"))
        generated.append(("MLSERVER_MODEL_IMPLEMENTATION", MLSERVER_IMPLEMENTATIONS[framework]))
        if spec.storage_uri:
            generated.append(("MLSERVER_MODEL_NAME", name))
            generated.append(("MLSERVER_MODEL_URI", MODEL_MOUNT_PATH))
            if "readinessProbe" not in container:
                # MLServer opens its HTTP port before the model has loaded, so the default
                # TCP probe would call the revision Ready while every request still fails;
                # the v2 protocol's model-ready endpoint answers 200 once it has loaded.
                container["readinessProbe"] = {
                    "httpGet": {"path": f"/v2/models/{name}/ready"}}
        _with_env(container, generated)
        args = []
    elif framework in PYTHON_SERVERS:
        args = [
            f"--model_name={name}",
            f"--model_dir={MODEL_MOUNT_PATH}",
            f"--http_port={DEFAULT_HTTP_PORT}",
        ]
        if framework in NTHREAD_FRAMEWORKS:
            args.append(f"--nthread={_cpu_cores(spec)}")
        if framework in WORKERS_FRAMEWORKS and workers and not _has_arg(user_args, "--workers"):
            args.append(f"--workers={workers}")
    elif framework == "tensorflow":
        seconds = timeout
        if seconds is None:
            configured = server.default_timeout
            seconds = (
                int(configured) if configured.isdigit() else DEFAULT_TENSORFLOW_TIMEOUT_SECONDS
            )
        if not spec.command:
            container["command"] = [TENSORFLOW_ENTRYPOINT]
        args = [
            f"--port={DEFAULT_GRPC_PORT}",
            f"--rest_api_port={DEFAULT_HTTP_PORT}",
            f"--model_name={name}",
            f"--model_base_path={MODEL_MOUNT_PATH}",
            f"--rest_api_timeout_in_ms={1000 * seconds}",
        ]
    elif framework == "pytorch":
        model_class = spec.model_class_name if isinstance(spec, TorchServeSpec) else None
        if model_class and protocol == PROTOCOL_V1:
            args = [
                f"--model_name={name}",
                f"--model_class_name={model_class}",
                f"--model_dir={MODEL_MOUNT_PATH}",
                f"--http_port={DEFAULT_HTTP_PORT}",
            ]
            if not _has_arg(user_args, "--workers"):
                if spec.has_gpu():
                    args.append("--workers=1")
                elif workers:
                    args.append(f"--workers={workers}")
        else:
            args = [
                "torchserve",
                "--start",
                f"--model-store={MODEL_MOUNT_PATH}/model-store",
                f"--ts-config={MODEL_MOUNT_PATH}/config/config.properties",
            ]
    elif framework == "triton":
        args = [
            "tritonserver",
            f"--model-store={MODEL_MOUNT_PATH}",
            f"--grpc-port={DEFAULT_GRPC_PORT}",
            f"--http-port={DEFAULT_HTTP_PORT}",
            "--allow-grpc=true",
            "--allow-http=true",
        ]
        if workers:
            args.append(f"--http-thread-count={workers}")
        if not spec.storage_uri:
            args.append("--model-control-mode=explicit")
    elif framework == "onnx":
        args = [
            f"--model_path={MODEL_MOUNT_PATH}/{_onnx_file(spec.storage_uri)}",
            f"--http_port={DEFAULT_HTTP_PORT}",
            f"--grpc_port={DEFAULT_GRPC_PORT}",
        ]
    else:  # pragma: no cover - FRAMEWORKS is closed; validation rejects anything else
        raise ValueError(f"unknown predictor framework {framework!r}")

    all_args = args + user_args
    if all_args:
        container["args"] = all_args
    else:
        container.pop("args", None)
    return container


def predictor_container(
    isvc: InferenceService, spec: PredictorSpec, config: OperatorConfig
) -> JsonDict:
    """The model container of the predictor."""
    impl = spec.implementation()
    if impl is None:
        raise ValueError("the predictor needs exactly one implementation")
    if impl.name == CUSTOM:
        return _container_base(impl.spec)
    return _predictor_framework_container(
        isvc, impl.name, impl.spec, spec.container_concurrency, spec.timeout, config
    )


# ------------------------------------------------------------------------------------------
# Transformer


def _append_pairs(user_args: list[str], pairs: list[tuple[str, str | None]]) -> list[str]:
    """User args, then ``--flag value`` for every flag the user did not give."""
    args = list(user_args)
    for flag, value in pairs:
        if value is not None and not _has_arg(user_args, flag):
            args += [flag, value]
    return args


def transformer_container(isvc: InferenceService, spec: TransformerSpec) -> JsonDict:
    """The first container of a (custom) transformer, with the KFServing arguments appended."""
    impl = spec.implementation()
    if impl is None:
        raise ValueError("the transformer needs containers")
    container = _container_base(impl.spec)
    workers = _workers(spec.container_concurrency)
    container["args"] = _append_pairs(
        list(impl.spec.args or []),
        [
            ("--model_name", isvc.name),
            ("--predictor_host", predictor_host(isvc)),
            ("--http_port", str(DEFAULT_HTTP_PORT)),
            ("--workers", str(workers) if workers else None),
        ],
    )
    return container


# ------------------------------------------------------------------------------------------
# Explainer

_EXPLAINER_TYPE_FLAG: Final = {"alibi": None, "aix": "--explainer_type", "art": "--adversary_type"}


def explainer_container(
    isvc: InferenceService, spec: ExplainerSpec, config: OperatorConfig
) -> JsonDict:
    """The explainer container; explainers always query the predictor (not the transformer)."""
    impl = spec.implementation()
    if impl is None:
        raise ValueError("the explainer needs exactly one implementation")
    if impl.name == CUSTOM:
        container = _container_base(impl.spec)
        container["args"] = _append_pairs(
            list(impl.spec.args or []),
            [
                ("--model_name", isvc.name),
                ("--predictor_host", predictor_host(isvc)),
                ("--http_port", str(DEFAULT_HTTP_PORT)),
            ],
        )
        return container

    framework: ExplainerExtensionSpec = impl.spec
    server = getattr(config.explainers, impl.name)
    container = _container_base(framework)
    container["image"] = _image(
        framework, server.image, framework.runtime_version, server.default_image_version
    )
    user_args = list(framework.args or [])
    args = ["--model_name", isvc.name, "--http_port", str(DEFAULT_HTTP_PORT)]
    if not _has_arg(user_args, "--predictor_host"):
        args += ["--predictor_host", predictor_host(isvc)]
    workers = _workers(spec.container_concurrency)
    if workers and not _has_arg(user_args, "--workers"):
        args += ["--workers", str(workers)]
    if framework.storage_uri:
        args += ["--storage_uri", MODEL_MOUNT_PATH]
    explainer_type = str(getattr(framework, "type", ""))
    type_flag = _EXPLAINER_TYPE_FLAG[impl.name]
    args += [type_flag, explainer_type] if type_flag else [explainer_type]
    for key in sorted(framework.config or {}):
        args += [f"--{key}", (framework.config or {})[key]]
    container["args"] = args + user_args
    return container


# ------------------------------------------------------------------------------------------


def component_container(
    isvc: InferenceService, component: str, spec: ComponentSpec, config: OperatorConfig
) -> JsonDict:
    """The generated container of ``component`` (predictor, transformer or explainer)."""
    if component == PREDICTOR and isinstance(spec, PredictorSpec):
        return predictor_container(isvc, spec, config)
    if component == TRANSFORMER and isinstance(spec, TransformerSpec):
        return transformer_container(isvc, spec)
    if component == EXPLAINER and isinstance(spec, ExplainerSpec):
        return explainer_container(isvc, spec, config)
    raise ValueError(f"unknown component {component!r}")
