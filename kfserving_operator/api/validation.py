"""The validating webhook's logic: every rule of reference section 2.2, and a few more.

The rules live here; what they build on lives beside them, one concern each: field errors and
parsing (``field_errors.py``), generated names and their lengths (``child_names.py``), checks
of single values (``values.py``) and what Knative refuses (``knative_limits.py``).

``validate_inference_service`` returns *all* problems, each as a :class:`FieldError` naming the
field (``spec.predictor.canaryTrafficPercent``) and what is allowed, in a stable order: metadata
first, then predictor, transformer, explainer; within a component the implementation count, the
implementations, then the component settings.

It runs after defaulting, so fields the defaulter fills (``logger.mode``, ``runtimeVersion``) are
only checked when present. Raw objects (dicts) are parsed first; parse problems (unknown field,
wrong type, missing required field) are reported the same way and end the validation, because
the semantic rules need a parsed object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from kfserving_operator.api.child_names import (
    GENERATED_NAME_SUFFIX_LENGTH,
    NAME_PATTERN,
    NAME_RE,
    describe_components,
    generated_names,
    max_name_length,
)
from kfserving_operator.api.components import (
    CUSTOM,
    CUSTOM_FIELD,
    PROTOCOL_V1,
    PROTOCOL_V2,
    PROTOCOL_VERSIONS,
    SCALE_METRICS,
    ComponentExtensionSpec,
    Implementation,
)
from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.constants import (
    AUTOSCALING_CLASS_ANNOTATION,
    DNS_LABEL_MAX,
    EXPLAINER,
    GPU_RESOURCE,
    HPA_CLASS,
    KPA_CLASS,
    LOGGER_MODES,
    PREDICTOR,
    RAW_DEPLOYMENT,
    STORAGE_INITIALIZER_RESOURCE_ANNOTATIONS,
    TRANSFORMER,
)
from kfserving_operator.api.explainer import (
    EXPLAINER_FRAMEWORKS,
    EXPLAINER_TYPES,
    ExplainerExtensionSpec,
)
from kfserving_operator.api.field_errors import (
    FieldError,
    format_path,
    parse_inference_service,
)
from kfserving_operator.api.inference_service import ComponentSpec, InferenceService
from kfserving_operator.api.knative_limits import (
    AUTOSCALING_BOUNDS,
    INT32_MAX,
    KNATIVE_MAX_CONTAINER_CONCURRENCY,
    KNATIVE_MAX_TIMEOUT_SECONDS,
    KNATIVE_PORT_NAMES,
    KNATIVE_RESERVED_CONTAINER_NAMES,
    KNATIVE_RESERVED_ENV,
    KNATIVE_RESERVED_PORTS,
)
from kfserving_operator.api.podspec import Container, ContainerFields
from kfserving_operator.api.predictor import (
    FRAMEWORKS,
    ONNXRuntimeSpec,
    PredictorExtensionSpec,
)
from kfserving_operator.api.raw_validation import isvc_mode, raw_mode_problems
from kfserving_operator.api.values import (
    DNS_LABEL_RE,
    QUALIFIED_RESOURCE_RE,
    STANDARD_RESOURCES,
    TAG_RE,
    image_reference_error,
    is_http_url,
    overcommit_forbidden,
    path_extension,
    quantity_error,
    quantity_value,
    storage_uri_error,
)

# Frameworks that serve exactly one protocol.
V1_ONLY_FRAMEWORKS: Final = ("tensorflow", "onnx", "pmml", "lightgbm", "paddle")
GPU_TAGGED_FRAMEWORKS: Final = ("tensorflow", "pytorch")

ALLOWED_IMPLEMENTATIONS: Final[dict[str, tuple[str, ...]]] = {
    PREDICTOR: (*FRAMEWORKS, CUSTOM_FIELD),
    TRANSFORMER: (CUSTOM_FIELD,),
    EXPLAINER: (*EXPLAINER_FRAMEWORKS, CUSTOM_FIELD),
}


# --------------------------------------------------------------------------------------------
# The validator


class _Validator:
    def __init__(self, isvc: InferenceService, config: OperatorConfig) -> None:
        self.isvc = isvc
        self.config = config
        self.errors: list[FieldError] = []
        self.raw = isvc_mode(isvc, config) == RAW_DEPLOYMENT

    def add(self, path: Sequence[str | int], message: str) -> None:
        self.errors.append(FieldError(format_path(path), message))

    # ---- metadata

    def metadata(self) -> None:
        meta = self.isvc.metadata
        components = [name for name, _ in self.isvc.components()]
        tag_routing = self.isvc.tag_routing_enabled()
        limit = max_name_length(components, tag_routing)
        if meta.name:
            path: tuple[str, ...] = ("metadata", "name")
            name = meta.name
            if not NAME_RE.match(name):
                self.add(
                    path,
                    "must consist of lower case alphanumeric characters or '-', start with a "
                    f"lower case letter and end with an alphanumeric character ({NAME_PATTERN}); "
                    f"got {name!r}",
                )
        elif meta.generate_name:
            path = ("metadata", "generateName")
            limit -= GENERATED_NAME_SUFFIX_LENGTH
            name = meta.generate_name
        else:
            self.add(("metadata", "name"), "is required")
            return
        if len(name) > limit:
            longest, what = max(
                generated_names(name, components, tag_routing), key=lambda item: len(item[0])
            )
            self.add(
                path,
                f"must be at most {limit} characters for an InferenceService with "
                f"{describe_components(components, tag_routing)}: the longest generated name, "
                f"{what} "
                f"{longest!r}, must be a DNS label of at most {DNS_LABEL_MAX} characters; "
                f"got {len(name)} characters",
            )

    def annotations(self) -> None:
        annotations = self.isvc.annotations
        for key, (least, greatest, integer) in AUTOSCALING_BOUNDS.items():
            if key in annotations:
                self.autoscaling_annotation(key, annotations[key], least, greatest, integer)
        storage = self.config.storage_initializer
        effective: dict[str, Decimal | None] = {}
        for attribute, key in STORAGE_INITIALIZER_RESOURCE_ANNOTATIONS.items():
            path = ("metadata", "annotations", key)
            if key in annotations:
                problem = quantity_error(annotations[key])
                if problem:
                    self.add(path, problem)
                amount = quantity_value(annotations[key])
                if amount is not None and amount < 0:
                    self.add(path, f"must be greater than or equal to 0; got {annotations[key]!r}")
                effective[attribute] = amount
            else:
                effective[attribute] = quantity_value(getattr(storage, attribute))
        for resource in ("cpu", "memory"):
            request = effective[f"{resource}_request"]
            limit = effective[f"{resource}_limit"]
            key = STORAGE_INITIALIZER_RESOURCE_ANNOTATIONS[f"{resource}_request"]
            limit_key = STORAGE_INITIALIZER_RESOURCE_ANNOTATIONS[f"{resource}_limit"]
            touched = key in annotations or limit_key in annotations
            if touched and request is not None and limit is not None and request > limit:
                self.add(
                    ("metadata", "annotations", key),
                    f"the storage initializer's {resource} request must not exceed its "
                    f"{resource} limit ({limit_key} or the configured default)",
                )

    def autoscaling_annotation(self, key: str, raw: str, least: float, greatest: float,
                               integer: bool) -> None:
        path = ("metadata", "annotations", key)
        kind = "an integer" if integer else "a number"
        bounds = (f"between {least:g} and {greatest:g}" if greatest != float("inf")
                  else f"at least {least:g}")
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            self.add(path, f"must be {kind} {bounds} (Knative copies it onto every revision); "
                           f"got {raw!r}")
            return
        if not least <= value <= greatest:
            self.add(path, f"must be {bounds} (Knative refuses the revision otherwise); "
                           f"got {raw!r}")

    # ---- components

    def component(self, name: str, spec: ComponentSpec) -> None:
        base: tuple[str, ...] = ("spec", name)
        impls = spec.implementations()
        if len(impls) != 1:
            allowed = ALLOWED_IMPLEMENTATIONS[name]
            found = ", ".join(CUSTOM_FIELD if i.name == CUSTOM else i.name for i in impls)
            self.add(
                base,
                f"exactly one of [{', '.join(allowed)}] must be specified; "
                + (f"found {len(impls)}: {found}" if impls else "found none"),
            )
        for impl in impls:
            self.implementation(name, spec, impl)
        self.extension(name, spec)

    def implementation(self, component: str, spec: ComponentSpec, impl: Implementation) -> None:
        base: tuple[str, ...] = ("spec", component)
        if impl.name == CUSTOM:
            self.custom(component, spec)
            return
        path = (*base, impl.name)
        framework = impl.spec
        if not isinstance(framework, (PredictorExtensionSpec, ExplainerExtensionSpec)):
            return
        self.container(path, framework)
        self.serving_containers([(path, framework)])
        version = getattr(framework, "runtime_version", None)
        if version and not TAG_RE.match(version):
            self.add((*path, "runtimeVersion"),
                     "must be a valid image tag (letters, digits, '_', '.', '-'; at most 128, "
                     f"not starting with '.' or '-'); got {version!r}")
        if framework.storage_uri:
            problem = storage_uri_error(framework.storage_uri)
            if problem:
                self.add((*path, "storageUri"), problem)
        if isinstance(framework, PredictorExtensionSpec):
            self.predictor_framework(path, impl.name, framework)
        else:
            self.explainer_framework(path, impl.name, framework)

    def predictor_framework(
        self, path: tuple[str, ...], name: str, spec: PredictorExtensionSpec
    ) -> None:
        protocol = spec.protocol_version
        protocol_path = (*path, "protocolVersion")
        if protocol is not None:
            if protocol not in PROTOCOL_VERSIONS:
                self.add(protocol_path, f"must be v1 or v2; got {protocol!r}")
            elif name == "pytorch" and protocol == PROTOCOL_V2:
                self.add(
                    protocol_path,
                    "invalid inference protocol version for pytorch: only v1 is accepted "
                    "(without modelClassName, v1 serves the model with TorchServe); got 'v2'",
                )
            elif name == "triton" and protocol != PROTOCOL_V2:
                self.add(protocol_path, f"triton serves only the v2 protocol; got {protocol!r}")
            elif name in V1_ONLY_FRAMEWORKS and protocol != PROTOCOL_V1:
                self.add(protocol_path, f"{name} serves only the v1 protocol; got {protocol!r}")
        if name in GPU_TAGGED_FRAMEWORKS and spec.runtime_version is not None:
            runtime_path = (*path, "runtimeVersion")
            gpu_tag = "-gpu" in spec.runtime_version
            if spec.has_gpu() and not gpu_tag:
                self.add(
                    runtime_path,
                    f"must contain '-gpu' because resources.limits requests {GPU_RESOURCE}; "
                    f"got {spec.runtime_version!r}",
                )
            elif gpu_tag and not spec.has_gpu():
                self.add(
                    runtime_path,
                    f"must not contain '-gpu' unless resources.limits requests {GPU_RESOURCE}; "
                    f"got {spec.runtime_version!r}",
                )
        if isinstance(spec, ONNXRuntimeSpec) and spec.storage_uri:
            extension = path_extension(spec.storage_uri)
            if extension and extension != ".onnx":
                self.add(
                    (*path, "storageUri"),
                    "must name a .onnx file or a directory (no extension); "
                    f"got extension {extension!r}",
                )
        if name == "pmml":
            for index, arg in enumerate(spec.args or ()):
                if arg == "--workers":
                    self.add(
                        (*path, "args", index),
                        "invalid workers argument: use --workers=1 (pmml runs one worker); "
                        "got '--workers' without a value",
                    )
                elif arg.startswith("--workers="):
                    value = arg.split("=", 1)[1]
                    if not value.isdigit() or int(value) > 1:
                        self.add(
                            (*path, "args", index),
                            f"pmml supports at most one worker (--workers=1); got {arg!r}",
                        )

    def explainer_framework(
        self, path: tuple[str, ...], name: str, spec: ExplainerExtensionSpec
    ) -> None:
        allowed = EXPLAINER_TYPES[name]
        explainer_type = getattr(spec, "type", None)
        if explainer_type not in allowed:
            self.add(
                (*path, "type"),
                f"must be one of [{', '.join(allowed)}]; got {explainer_type!r}",
            )
        for key in sorted(spec.config or {}):
            if not key.strip() or any(ch.isspace() for ch in key):
                self.add(
                    (*path, "config"),
                    f"keys must be non-empty option names without spaces; got {key!r}",
                )

    def custom(self, component: str, spec: ComponentSpec) -> None:
        base: tuple[str, ...] = ("spec", component, "containers")
        self.serving_containers([((*base, index), container)
                                 for index, container in enumerate(spec.custom_containers())])
        for index, container in enumerate(spec.custom_containers()):
            path: tuple[str | int, ...] = (*base, index)
            self.container(path, container)
            if index == 0 and not container.image:
                self.add((*path, "image"), f"is required for a custom {component}")
            if index > 0 and not container.name:
                self.add((*path, "name"), "is required for every container after the first")
        first: Container = spec.custom_containers()[0]
        for index, var in enumerate(first.env or ()):
            var_path: tuple[str | int, ...] = (*base, 0, "env", index, "value")
            if var.value is None:
                continue
            if var.name == "STORAGE_URI" and var.value:
                problem = storage_uri_error(var.value)
                if problem:
                    self.add(var_path, f"STORAGE_URI {problem}")
            protocol_env = var.name == "PROTOCOL" and component == PREDICTOR
            if protocol_env and var.value not in PROTOCOL_VERSIONS:
                self.add(var_path, f"PROTOCOL must be v1 or v2; got {var.value!r}")

    def container(self, path: Sequence[str | int], container: ContainerFields) -> None:
        resources = container.resources
        if resources is None:
            return
        values: dict[str, dict[str, Decimal | None]] = {}
        for kind in ("requests", "limits"):
            values[kind] = {}
            for resource, value in sorted((getattr(resources, kind) or {}).items()):
                where = (*path, "resources", kind, resource)
                problem = quantity_error(value)
                if problem:
                    self.add(where, problem)
                amount = quantity_value(value)
                values[kind][resource] = amount
                self.resource_value(where, resource, value, amount)
        for resource, request in sorted(values["requests"].items()):
            limit = values["limits"].get(resource)
            if (overcommit_forbidden(resource) and request is not None and limit is not None
                    and request != limit):
                self.add((*path, "resources", "requests", resource),
                         f"must equal resources.limits.{resource}: Kubernetes does not "
                         f"overcommit {resource}; got request {request} and limit {limit}")
        for resource, request in sorted(values["requests"].items()):
            limit = values["limits"].get(resource)
            if request is not None and limit is not None and request > limit:
                self.add(
                    (*path, "resources", "requests", resource),
                    f"must be less than or equal to resources.limits.{resource} "
                    f"({resources.limits[resource] if resources.limits else ''}); "
                    f"got {resources.requests[resource] if resources.requests else ''}",
                )

    def resource_value(self, path: Sequence[str | int], resource: str, raw: object,
                       amount: Decimal | None) -> None:
        """What Kubernetes checks of one requests/limits entry at pod creation."""
        if resource not in STANDARD_RESOURCES and not resource.startswith("hugepages-") and (
                not QUALIFIED_RESOURCE_RE.match(resource)):
            self.add(path, "must be cpu, memory, ephemeral-storage, hugepages-<size> or a "
                           f"domain-qualified name such as nvidia.com/gpu; got {resource!r}")
        if amount is None:
            return
        if amount < 0:
            self.add(path, f"must be greater than or equal to 0; got {raw!r}")
        elif "/" in resource and not resource.startswith("kubernetes.io/") and (
                amount != amount.to_integral_value()):
            self.add(path, f"must be a whole number ({resource} is an extended resource); "
                           f"got {raw!r}")

    def serving_containers(
            self, containers: Sequence[tuple[Sequence[str | int], ContainerFields]]) -> None:
        """What Knative checks of the containers of one revision, with our field paths."""
        seen: dict[str, Sequence[str | int]] = {}
        port_paths: list[tuple[str | int, ...]] = []
        for index, (path, container) in enumerate(containers):
            name = container.name
            if name:
                if name in seen:
                    self.add((*path, "name"), f"duplicate container name {name!r} (also at "
                                              f"{format_path(seen[name])})")
                seen[name] = path
                if not DNS_LABEL_RE.match(name) or len(name) > DNS_LABEL_MAX:
                    self.add((*path, "name"), "must be a DNS label (lower-case letters, digits "
                                              f"and '-', at most {DNS_LABEL_MAX}); got {name!r}")
                if name in KNATIVE_RESERVED_CONTAINER_NAMES:
                    self.add((*path, "name"), f"{name!r} is reserved for Knative's sidecar")
            if container.image:
                problem = image_reference_error(container.image)
                if problem:
                    self.add((*path, "image"), problem)
            for port_index, port in enumerate(container.ports or ()):
                port_paths.append((*path, "ports", port_index))
                self.port((*path, "ports", port_index), port)
            self.env(path, container, serving=index == 0)
        if len(port_paths) > 1:
            self.add(port_paths[1], "a revision serves on exactly one port: Knative refuses "
                                    "more than one container port across all containers; got "
                                    f"{len(port_paths)}")

    def port(self, path: Sequence[str | int], port: Mapping[str, Any]) -> None:
        number = port.get("containerPort")
        if isinstance(number, bool) or not isinstance(number, int):
            self.add((*path, "containerPort"), f"must be an integer; got {number!r}")
        elif not 0 < number <= 65535:
            self.add((*path, "containerPort"), f"must be between 1 and 65535; got {number}")
        elif number in KNATIVE_RESERVED_PORTS:
            self.add((*path, "containerPort"),
                     f"{number} is reserved by Knative (reserved: "
                     f"{', '.join(map(str, sorted(KNATIVE_RESERVED_PORTS)))})")
        name = port.get("name", "")
        if name not in KNATIVE_PORT_NAMES:
            self.add((*path, "name"), f"must be empty, 'h2c' or 'http1' (Knative chooses the "
                                      f"protocol by it); got {name!r}")
        protocol = port.get("protocol", "TCP")
        if protocol != "TCP":
            self.add((*path, "protocol"), f"must be TCP; got {protocol!r}")

    def env(self, path: Sequence[str | int], container: ContainerFields, serving: bool) -> None:
        reserved = KNATIVE_RESERVED_ENV if serving else KNATIVE_RESERVED_ENV[1:]
        for index, var in enumerate(container.env or ()):
            where = (*path, "env", index)
            if not var.name:
                self.add((*where, "name"), "is required")
            elif "=" in var.name or not var.name.isprintable() or not var.name.isascii():
                self.add((*where, "name"), "must be printable ASCII without '='; got "
                                           f"{var.name!r}")
            elif var.name in reserved:
                self.add((*where, "name"), f"{var.name!r} is set by Knative in every revision")
            source = var.value_from or {}
            for field in ("fieldRef", "resourceFieldRef"):
                if field in source:
                    self.add((*where, "valueFrom", field),
                             "is not allowed: Knative refuses it unless its "
                             "kubernetes.podspec-fieldref feature is enabled; use "
                             "secretKeyRef or configMapKeyRef")

    def extension(self, component: str, spec: ComponentExtensionSpec) -> None:
        base: tuple[str, ...] = ("spec", component)

        def at_least(field: str, value: int | None, minimum: int) -> None:
            if value is not None and value < minimum:
                self.add((*base, field), f"must be greater than or equal to {minimum}; got {value}")

        def at_most(field: str, value: int | None, maximum: int, why: str) -> None:
            if value is not None and value > maximum:
                self.add((*base, field), f"must be less than or equal to {maximum} ({why}); "
                                         f"got {value}")

        at_least("containerConcurrency", spec.container_concurrency, 0)
        at_most("containerConcurrency", spec.container_concurrency,
                KNATIVE_MAX_CONTAINER_CONCURRENCY, "Knative's container-concurrency-max-limit")
        at_least("minReplicas", spec.min_replicas, 0)
        at_least("maxReplicas", spec.max_replicas, 0)
        for field, value in (("minReplicas", spec.min_replicas),
                             ("maxReplicas", spec.max_replicas)):
            at_most(field, value, INT32_MAX, "a 32-bit integer")
        at_most("timeout", spec.timeout, KNATIVE_MAX_TIMEOUT_SECONDS,
                "Knative's max-revision-timeout-seconds")
        at_most("scaleTarget", spec.scale_target, INT32_MAX, "a 32-bit integer")
        min_replicas = 1 if spec.min_replicas is None else spec.min_replicas
        max_replicas = spec.max_replicas or 0
        if max_replicas > 0 and min_replicas >= 0 and min_replicas > max_replicas:
            shown = "unset, meaning 1" if spec.min_replicas is None else str(min_replicas)
            self.add(
                (*base, "minReplicas"),
                f"must be less than or equal to maxReplicas ({max_replicas}) unless maxReplicas "
                f"is 0; got {shown}",
            )
        percent = spec.canary_traffic_percent
        if percent is not None and not 0 <= percent <= 100:
            self.add((*base, "canaryTrafficPercent"), f"must be between 0 and 100; got {percent}")
        at_least("timeout", spec.timeout, 1)
        at_least("scaleTarget", spec.scale_target, 1)
        metric = spec.scale_metric
        if metric is not None:
            if metric not in SCALE_METRICS:
                self.add(
                    (*base, "scaleMetric"),
                    f"must be one of [{', '.join(SCALE_METRICS)}]; got {metric!r}",
                )
            elif metric in ("cpu", "memory") and not self.raw:
                autoscaler = self.isvc.annotations.get(AUTOSCALING_CLASS_ANNOTATION, KPA_CLASS)
                if autoscaler != HPA_CLASS:
                    self.add(
                        (*base, "scaleMetric"),
                        f"{metric} needs the Knative HPA autoscaler: set the annotation "
                        f"{AUTOSCALING_CLASS_ANNOTATION}: {HPA_CLASS} (concurrency and rps work "
                        f"with the default KPA); got class {autoscaler!r}",
                    )
        if spec.logger is not None:
            mode = spec.logger.mode
            if mode is not None and mode not in LOGGER_MODES:
                self.add(
                    (*base, "logger", "mode"),
                    f"must be one of [{', '.join(LOGGER_MODES)}]; got {mode!r}",
                )
            url = spec.logger.url
            if url is not None and not is_http_url(url):
                self.add(
                    (*base, "logger", "url"), f"must be an http:// or https:// URL; got {url!r}"
                )
        if spec.batcher is not None:
            if component == EXPLAINER:
                self.add(
                    (*base, "batcher"),
                    "batching is supported only on the predictor and the transformer",
                )
            batcher = spec.batcher
            for field, value in (
                ("maxBatchSize", batcher.max_batch_size),
                ("maxLatency", batcher.max_latency),
                ("timeout", batcher.timeout),
            ):
                if value is not None and value < 1:
                    self.add(
                        (*base, "batcher", field),
                        f"must be greater than or equal to 1; got {value}",
                    )

    def run(self) -> list[FieldError]:
        self.metadata()
        self.annotations()
        for name, spec in self.isvc.components():
            self.component(name, spec)
        for path, message in raw_mode_problems(self.isvc, self.config):
            self.add(path, message)
        return self.errors


def validate_inference_service(
    isvc: InferenceService | Mapping[str, Any], config: OperatorConfig
) -> list[FieldError]:
    """All problems with ``isvc`` (a model or a raw object); an empty list means valid."""
    if isinstance(isvc, InferenceService):
        model = isvc
    else:
        parsed, errors = parse_inference_service(isvc)
        if parsed is None:
            return errors
        model = parsed
    return _Validator(model, config).run()


def validate_inference_service_dict(
    data: Mapping[str, Any], config: OperatorConfig
) -> list[FieldError]:
    """Parse and validate a raw object (as a webhook receives it)."""
    return validate_inference_service(data, config)
