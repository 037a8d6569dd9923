"""The pod mutation: GKE accelerator selector, storage initializer, agent sidecar.

Pure functions over plain dicts, as pods arrive in an AdmissionReview. The input is never
modified; :func:`mutate_pod` returns a new pod, and :func:`pod_patch` the RFC 6902 patch
from the old to the new one. Applying the mutation to its own output changes nothing, so
reinvocation and retries are safe.
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonpatch

from kfserving_operator.api.config import OperatorConfig, StorageInitializerConfig
from kfserving_operator.api.constants import (
    AGENT_ANNOTATION,
    AGENT_CONTAINER_NAME,
    BATCHER_ANNOTATION,
    BATCHER_MAX_BATCH_SIZE_ANNOTATION,
    BATCHER_MAX_LATENCY_ANNOTATION,
    BATCHER_TIMEOUT_ANNOTATION,
    COMPONENT_LABEL,
    DEFAULT_LOGGER_MODE,
    GKE_ACCELERATOR_ANNOTATION,
    GPU_RESOURCE,
    ISVC_LABEL,
    LOGGER_ANNOTATION,
    LOGGER_MODE_ANNOTATION,
    LOGGER_MODES,
    LOGGER_SINK_URL_ANNOTATION,
    MODEL_CONTAINER_NAME,
    MODEL_MOUNT_PATH,
    STORAGE_INITIALIZER_CONTAINER_NAME,
    STORAGE_INITIALIZER_RESOURCE_ANNOTATIONS,
    STORAGE_INITIALIZER_SOURCE_URI_ANNOTATION,
    STORAGE_URI_ENV,
    model_config_name,
)
from kfserving_operator.api.quantity import QuantityError, parse_quantity
from kfserving_operator.podmutation import names
from kfserving_operator.podmutation.credentials import (
    CredentialSources,
    ResolvedCredentials,
    resolve_credentials,
    service_account_name,
)
from kfserving_operator.podmutation.errors import PodMutationError
from kfserving_operator.podmutation.raw_agent import raw_agent_fields
from kfserving_operator.podmutation.storage_uri import parse_storage_uri

Pod = dict[str, Any]


@dataclass(frozen=True)
class MutationResult:
    """The mutated pod (a new dict) and notes worth a debug log line."""

    pod: Pod
    notes: tuple[str, ...] = ()


def is_in_scope(pod: Mapping[str, Any]) -> bool:
    """Only pods of an InferenceService (labelled with its name) are mutated."""
    labels = _labels(pod)
    return ISVC_LABEL in labels


def credentials_needed(pod: Mapping[str, Any]) -> bool:
    """Whether :func:`mutate_pod` will use credentials, so the shell can skip the reads."""
    return is_in_scope(pod) and (_wants_storage_initializer(pod) or _wants_agent(pod))


def mutate_pod(
    pod: Mapping[str, Any],
    config: OperatorConfig,
    credentials: CredentialSources,
    *,
    namespace: str | None = None,
) -> MutationResult:
    """Mutate a copy of ``pod``: GKE accelerator selector, storage initializer, agent.

    ``credentials`` holds what the shell read for the pod's ServiceAccount (only used when a
    storage initializer or agent is injected; see :func:`credentials_needed`).
    ``namespace`` is the admission request's namespace; pods created by a ReplicaSet
    usually have none in their metadata. Raises :class:`PodMutationError` when the pod's
    annotations or containers do not allow the mutation.
    """
    mutated: Pod = copy.deepcopy(dict(pod))
    if not is_in_scope(mutated):
        return MutationResult(mutated)
    state = _State(mutated, config, credentials, namespace)
    _add_gke_accelerator_selector(state)
    _add_storage_initializer(state)
    _add_agent(state)
    return MutationResult(mutated, tuple(state.notes))


def pod_patch(original: Mapping[str, Any], mutated: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The RFC 6902 JSON patch that turns ``original`` into ``mutated``."""
    return [dict(op) for op in jsonpatch.make_patch(dict(original), dict(mutated)).patch]


# --------------------------------------------------------------------------------------
# Pod access helpers.


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _labels(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(_mapping(pod.get("metadata")).get("labels"))


def _annotations(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(_mapping(pod.get("metadata")).get("annotations"))


def _container_list(pod: Mapping[str, Any], key: str) -> list[Any]:
    value = _mapping(pod.get("spec")).get(key)
    return value if isinstance(value, list) else []


def _find(containers: list[Any], name: str) -> dict[str, Any] | None:
    for container in containers:
        if isinstance(container, dict) and container.get("name") == name:
            return container
    return None


def _wants_storage_initializer(pod: Mapping[str, Any]) -> bool:
    annotations = _annotations(pod)
    return (
        STORAGE_INITIALIZER_SOURCE_URI_ANNOTATION in annotations
        and AGENT_ANNOTATION not in annotations
        and _find(_container_list(pod, "initContainers"), STORAGE_INITIALIZER_CONTAINER_NAME)
        is None
    )


def _wants_agent(pod: Mapping[str, Any]) -> bool:
    annotations = _annotations(pod)
    return (
        any(key in annotations for key in (LOGGER_ANNOTATION, BATCHER_ANNOTATION, AGENT_ANNOTATION))
        and _find(_container_list(pod, "containers"), AGENT_CONTAINER_NAME) is None
    )


class _State:
    """The pod being mutated, with its lazily resolved credentials and the notes so far."""

    def __init__(
        self,
        pod: Pod,
        config: OperatorConfig,
        sources: CredentialSources,
        namespace: str | None,
    ) -> None:
        self.pod = pod
        self.config = config
        self.sources = sources
        self.namespace = namespace
        self.notes: list[str] = []
        self._credentials: ResolvedCredentials | None = None

    @property
    def annotations(self) -> Mapping[str, Any]:
        return _annotations(self.pod)

    def spec(self) -> dict[str, Any]:
        spec = self.pod.get("spec")
        if spec is None:
            spec = self.pod["spec"] = {}
        if not isinstance(spec, dict):
            raise PodMutationError("pod spec must be an object")
        return spec

    def containers(self, key: str) -> list[Any]:
        spec = self.spec()
        value = spec.get(key)
        if value is None:
            value = spec[key] = []
        if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
            raise PodMutationError(f"pod spec.{key} must be a list of container objects")
        return value

    def credentials(self) -> ResolvedCredentials:
        if self._credentials is None:
            self._credentials = resolve_credentials(
                self.sources,
                self.config.credentials,
                service_account=service_account_name(self.pod),
            )
            self.notes.extend(self._credentials.notes)
        return self._credentials

    def add_volume(self, volume: Mapping[str, Any]) -> None:
        volumes = self.spec().setdefault("volumes", [])
        if not isinstance(volumes, list):
            raise PodMutationError("pod spec.volumes must be a list")
        for existing in volumes:
            if isinstance(existing, Mapping) and existing.get("name") == volume["name"]:
                if existing == volume:
                    return
                raise PodMutationError(
                    f"pod already has a volume named {volume['name']!r} that differs from the "
                    "one the operator injects; rename that volume"
                )
        volumes.append(copy.deepcopy(dict(volume)))

    def add_credentials(self, container: dict[str, Any]) -> None:
        creds = self.credentials()
        for volume in creds.volumes:
            self.add_volume(volume)
        for mount in creds.volume_mounts:
            _add_mount(container, mount)
        for env in creds.env:
            _add_env(container, env, self.notes)


def _add_mount(container: dict[str, Any], mount: Mapping[str, Any]) -> None:
    mounts = container.setdefault("volumeMounts", [])
    if not isinstance(mounts, list):
        raise PodMutationError(f"container {container.get('name')!r}: volumeMounts must be a list")
    for existing in mounts:
        if not isinstance(existing, Mapping):
            continue
        if existing == mount:
            return
        if existing.get("mountPath") == mount["mountPath"]:
            raise PodMutationError(
                f"container {container.get('name')!r} already mounts volume "
                f"{existing.get('name')!r} at {mount['mountPath']!r}, where the operator "
                f"mounts {mount['name']!r}; remove that volume mount"
            )
    mounts.append(copy.deepcopy(dict(mount)))


def _add_env(container: dict[str, Any], env: Mapping[str, Any], notes: list[str]) -> None:
    envs = container.setdefault("env", [])
    if not isinstance(envs, list):
        raise PodMutationError(f"container {container.get('name')!r}: env must be a list")
    if any(isinstance(e, Mapping) and e.get("name") == env["name"] for e in envs):
        notes.append(
            f"container {container.get('name')!r} already sets {env['name']}; kept its value"
        )
        return
    envs.append(copy.deepcopy(dict(env)))


# --------------------------------------------------------------------------------------
# GKE accelerator.


def _add_gke_accelerator_selector(state: _State) -> None:
    accelerator = state.annotations.get(GKE_ACCELERATOR_ANNOTATION)
    if accelerator is None:
        return
    uses_gpu = any(
        GPU_RESOURCE in _mapping(_mapping(c.get("resources")).get("limits"))
        for c in _container_list(state.pod, "containers")
        if isinstance(c, Mapping)
    )
    if not uses_gpu:
        return
    if not isinstance(accelerator, str) or not accelerator:
        state.notes.append(f"annotation {GKE_ACCELERATOR_ANNOTATION} is empty; no node selector")
        return
    spec = state.spec()
    selector = spec.get("nodeSelector")
    if selector is None:
        selector = spec["nodeSelector"] = {}
    if not isinstance(selector, dict):
        raise PodMutationError("pod spec.nodeSelector must be an object")
    selector[names.GKE_ACCELERATOR_NODE_SELECTOR] = accelerator


# --------------------------------------------------------------------------------------
# Storage initializer.

_RESOURCE_FIELDS = (
    ("cpu", "cpu_request", "cpu_limit"),
    ("memory", "memory_request", "memory_limit"),
)


def _storage_initializer_resources(
    annotations: Mapping[str, Any], config: StorageInitializerConfig
) -> dict[str, dict[str, str]]:
    values: dict[str, str] = {}
    origin: dict[str, str] = {}
    for attribute, annotation in STORAGE_INITIALIZER_RESOURCE_ANNOTATIONS.items():
        if annotation in annotations:
            raw = annotations[annotation]
            value = raw.strip() if isinstance(raw, str) else ""
            try:
                amount = parse_quantity(value)
            except QuantityError:
                amount = None
            if amount is None or amount < 0:
                raise PodMutationError(
                    f"annotation {annotation} has value {raw!r}, which is not a non-negative "
                    "Kubernetes quantity (examples: 100m, 1, 512Mi, 2Gi)"
                )
            values[attribute] = value
            origin[attribute] = f"annotation {annotation}"
        else:
            values[attribute] = str(getattr(config, attribute))
            origin[attribute] = "the storageInitializer config"
    for resource, request, limit in _RESOURCE_FIELDS:
        if parse_quantity(values[request]) > parse_quantity(values[limit]):
            raise PodMutationError(
                f"storage initializer {resource} request {values[request]} (from "
                f"{origin[request]}) is greater than its limit {values[limit]} (from "
                f"{origin[limit]}); the request must not exceed the limit"
            )
    return config.model_copy(update=values).requirements()


def _add_storage_initializer(state: _State) -> None:
    if not _wants_storage_initializer(state.pod):
        return
    annotation = STORAGE_INITIALIZER_SOURCE_URI_ANNOTATION
    raw_uri = state.annotations[annotation]
    if not isinstance(raw_uri, str):
        raise PodMutationError(f"annotation {annotation} must be a string")
    source = parse_storage_uri(raw_uri, source=f"annotation {annotation}")
    user = _find(state.containers("containers"), MODEL_CONTAINER_NAME)
    if user is None:
        raise PodMutationError(
            f"pod has annotation {annotation} but no container named "
            f"{MODEL_CONTAINER_NAME!r} to receive the model; name the model server "
            f"container {MODEL_CONTAINER_NAME!r}"
        )
    resources = _storage_initializer_resources(state.annotations, state.config.storage_initializer)
    init_containers = state.containers("initContainers")

    state.add_volume({"name": names.PROVISION_VOLUME_NAME, "emptyDir": {}})
    init_mounts: list[dict[str, Any]] = [
        {"name": names.PROVISION_VOLUME_NAME, "mountPath": MODEL_MOUNT_PATH}
    ]
    user_mounts: list[dict[str, Any]] = [
        {"name": names.PROVISION_VOLUME_NAME, "mountPath": MODEL_MOUNT_PATH, "readOnly": True}
    ]
    if source.pvc_claim is not None:
        state.add_volume(
            {
                "name": names.PVC_VOLUME_NAME,
                "persistentVolumeClaim": {"claimName": source.pvc_claim, "readOnly": True},
            }
        )
        pvc_mount = {
            "name": names.PVC_VOLUME_NAME,
            "mountPath": names.PVC_MOUNT_PATH,
            "readOnly": True,
        }
        init_mounts.append(pvc_mount)
        user_mounts.append(dict(pvc_mount))
    for mount in user_mounts:
        _add_mount(user, mount)

    init: dict[str, Any] = {
        "name": STORAGE_INITIALIZER_CONTAINER_NAME,
        "image": state.config.storage_initializer.image,
        "args": [source.download_uri, MODEL_MOUNT_PATH],
        "resources": resources,
        "terminationMessagePolicy": names.TERMINATION_MESSAGE_POLICY,
        "volumeMounts": init_mounts,
    }
    security_context = user.get("securityContext")
    if security_context:
        init["securityContext"] = copy.deepcopy(security_context)
    state.add_credentials(init)
    if not init.get("env"):
        init.pop("env", None)
    init_containers.append(init)

    for env in user.get("env") or []:
        if isinstance(env, dict) and env.get("name") == STORAGE_URI_ENV and env.get("value"):
            env["value"] = MODEL_MOUNT_PATH
    state.notes.append(f"storage initializer added for {source.kind} URI {raw_uri!r}")


# --------------------------------------------------------------------------------------
# Agent sidecar.


def _non_negative_integer(annotations: Mapping[str, Any], annotation: str) -> str:
    value = annotations[annotation]
    if not isinstance(value, str) or not value.isdigit() or not value.isascii():
        raise PodMutationError(
            f"annotation {annotation} has value {value!r}; it must be a non-negative integer"
        )
    return value


def _add_agent(state: _State) -> None:
    if not _wants_agent(state.pod):
        return
    annotations = state.annotations
    labels = _labels(state.pod)
    metadata = _mapping(state.pod.get("metadata"))
    containers = state.containers("containers")
    puller = AGENT_ANNOTATION in annotations
    config_dir = str(
        annotations.get(names.AGENT_CONFIG_MOUNT_PATH_ANNOTATION) or names.DEFAULT_AGENT_CONFIG_DIR
    )
    model_dir = str(annotations.get(names.AGENT_MODEL_DIR_ANNOTATION) or MODEL_MOUNT_PATH)

    args: list[str] = []
    if puller:
        args += ["--enable-puller", "--config-dir", config_dir, "--model-dir", model_dir]
    if BATCHER_ANNOTATION in annotations:
        args.append("--enable-batcher")
        for flag, annotation in (
            ("--max-batchsize", BATCHER_MAX_BATCH_SIZE_ANNOTATION),
            ("--max-latency", BATCHER_MAX_LATENCY_ANNOTATION),
            ("--timeout", BATCHER_TIMEOUT_ANNOTATION),
        ):
            if annotation in annotations:
                args += [flag, _non_negative_integer(annotations, annotation)]
    if LOGGER_ANNOTATION in annotations:
        url = annotations.get(LOGGER_SINK_URL_ANNOTATION) or state.config.logger.default_url
        mode = annotations.get(LOGGER_MODE_ANNOTATION) or DEFAULT_LOGGER_MODE
        if mode not in LOGGER_MODES:
            raise PodMutationError(
                f"annotation {LOGGER_MODE_ANNOTATION} has value {mode!r}; allowed: "
                + ", ".join(LOGGER_MODES)
            )
        namespace = state.namespace or metadata.get("namespace") or ""
        args += [
            "--log-url", str(url),
            "--source-uri", str(metadata.get("name") or metadata.get("generateName") or ""),
            "--log-mode", str(mode),
            "--inference-service", str(labels.get(ISVC_LABEL, "")),
            "--namespace", str(namespace),
            "--endpoint", str(labels.get(names.ENDPOINT_LABEL, "")),
            "--component", str(labels.get(COMPONENT_LABEL, "")),
        ]  # fmt: skip

    queue_proxy = _find(containers, names.QUEUE_PROXY_CONTAINER_NAME)
    raw = None
    if queue_proxy is None and containers:  # a raw Deployment's pod: see raw_agent.py
        raw = raw_agent_fields(_mapping(containers[0]))
        args += raw[0]
    agent: dict[str, Any] = {
        "name": AGENT_CONTAINER_NAME,
        "image": state.config.agent.image,
        "args": args,
        "resources": state.config.agent.requirements(),
    }
    if queue_proxy is not None and isinstance(queue_proxy.get("env"), list):
        agent["env"] = copy.deepcopy(queue_proxy["env"])
    if raw is not None:
        agent["env"] = raw[1]
        agent["ports"] = raw[2]
    agent["readinessProbe"] = {
        "exec": {"command": list(names.AGENT_PROBE_COMMAND)},
        "timeoutSeconds": names.AGENT_PROBE_TIMEOUT_SECONDS,
    }
    state.add_credentials(agent)
    if not agent.get("env"):
        agent.pop("env", None)
    containers.append(agent)

    if puller:
        isvc = str(labels.get(ISVC_LABEL, ""))
        config_volume = str(
            annotations.get(names.AGENT_CONFIG_VOLUME_NAME_ANNOTATION) or model_config_name(isvc)
        )
        state.add_volume({"name": names.MODEL_DIR_VOLUME_NAME, "emptyDir": {}})
        state.add_volume(
            {"name": names.MODEL_CONFIG_VOLUME_NAME, "configMap": {"name": config_volume}}
        )
        model_mount = {"name": names.MODEL_DIR_VOLUME_NAME, "mountPath": model_dir}
        user = _find(containers, MODEL_CONTAINER_NAME)
        if user is not None:
            _add_mount(user, model_mount)
        _add_mount(agent, model_mount)
        _add_mount(agent, {"name": names.MODEL_CONFIG_VOLUME_NAME, "mountPath": config_dir})
    state.notes.append("agent sidecar added with args " + shlex.join(args))
