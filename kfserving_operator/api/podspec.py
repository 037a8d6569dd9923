"""Core Kubernetes container and pod fields, inlined into the InferenceService components.

KFServing inlines a core ``Container`` into every framework spec (``spec.predictor.sklearn.image``)
and a core ``PodSpec`` into every component (``spec.predictor.serviceAccountName``). The fields the
operator reads are typed; the large core subtrees it only passes on (probes, affinity, volumes,
security contexts, ...) are plain JSON objects, kept as they are and left to Kubernetes to check.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

from kfserving_operator.api.base import ApiModel
from kfserving_operator.api.constants import GPU_RESOURCE

JsonObject = dict[str, Any]


def _quantity_text(value: object) -> object:
    """Numbers are quantities too (``cpu: 1``); keep them as their string form."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    return value


# A resource quantity such as ``500m`` or ``2Gi`` (YAML numbers are accepted and kept as text).
# Whether it parses is checked by the validator, so every problem is reported at once.
Quantity = Annotated[
    str,
    BeforeValidator(_quantity_text),
    WithJsonSchema({"x-kubernetes-int-or-string": True}),
]


class EnvVar(ApiModel):
    """An environment variable of a container (core ``EnvVar``)."""

    name: str = Field(description="Name of the environment variable.")
    value: str | None = Field(
        default=None, description="Value of the variable; $(VAR) references are expanded."
    )
    value_from: JsonObject | None = Field(
        default=None,
        description="Source of the value (secretKeyRef, configMapKeyRef, fieldRef, ...).",
    )


class ResourceRequirements(ApiModel):
    """Compute resources of a container (core ``ResourceRequirements``)."""

    limits: dict[str, Quantity] | None = Field(
        default=None,
        description="Maximum resources, e.g. cpu: '1', memory: 2Gi, nvidia.com/gpu: '1'.",
    )
    requests: dict[str, Quantity] | None = Field(
        default=None, description="Minimum resources the scheduler reserves."
    )
    claims: list[JsonObject] | None = Field(
        default=None, description="Dynamic resource claims used by this container."
    )


class ContainerFields(ApiModel):
    """The fields of a core ``Container``, inlined into framework specs and custom containers."""

    name: str | None = Field(
        default=None,
        description="Container name; the model container is named kfserving-container.",
    )
    image: str | None = Field(
        default=None,
        description="Container image; frameworks default to <configured image>:<runtimeVersion>.",
    )
    command: list[str] | None = Field(default=None, description="Entrypoint array.")
    args: list[str] | None = Field(
        default=None, description="Arguments; for frameworks they follow the generated ones."
    )
    working_dir: str | None = Field(default=None, description="Working directory.")
    ports: list[JsonObject] | None = Field(
        default=None, description="Ports to expose (core ContainerPort objects)."
    )
    env_from: list[JsonObject] | None = Field(
        default=None, description="Sources of environment variables (core EnvFromSource)."
    )
    env: list[EnvVar] | None = Field(default=None, description="Environment variables.")
    resources: ResourceRequirements | None = Field(
        default=None,
        description="Compute resources; cpu and memory requests and limits are defaulted.",
    )
    resize_policy: list[JsonObject] | None = Field(
        default=None, description="Resize policies of the container's resources."
    )
    restart_policy: str | None = Field(
        default=None, description="Container restart policy (init containers only)."
    )
    volume_mounts: list[JsonObject] | None = Field(
        default=None, description="Volumes to mount (core VolumeMount objects)."
    )
    volume_devices: list[JsonObject] | None = Field(
        default=None, description="Block devices to use (core VolumeDevice objects)."
    )
    liveness_probe: JsonObject | None = Field(default=None, description="Liveness probe.")
    readiness_probe: JsonObject | None = Field(default=None, description="Readiness probe.")
    startup_probe: JsonObject | None = Field(default=None, description="Startup probe.")
    lifecycle: JsonObject | None = Field(default=None, description="Lifecycle hooks.")
    termination_message_path: str | None = Field(
        default=None, description="Where the container writes its termination message."
    )
    termination_message_policy: str | None = Field(
        default=None,
        description="How the termination message is filled (File, FallbackToLogsOnError).",
    )
    image_pull_policy: str | None = Field(
        default=None, description="Image pull policy: Always, Never or IfNotPresent."
    )
    security_context: JsonObject | None = Field(
        default=None, description="Security options of the container (core SecurityContext)."
    )
    stdin: bool | None = Field(default=None, description="Allocate a buffer for stdin.")
    stdin_once: bool | None = Field(default=None, description="Close stdin after the first attach.")
    tty: bool | None = Field(default=None, description="Allocate a TTY.")

    def env_value(self, name: str) -> str | None:
        """The literal value of environment variable ``name`` (last one wins), if any."""
        found: str | None = None
        for var in self.env or ():
            if var.name == name and var.value is not None:
                found = var.value
        return found

    def has_gpu(self) -> bool:
        """True when the container's limits ask for an NVIDIA GPU (any value, as KFServing)."""
        limits = self.resources.limits if self.resources else None
        return bool(limits) and GPU_RESOURCE in (limits or {})


class Container(ContainerFields):
    """A container of a custom component (core ``Container``; the first one serves the model)."""


class PodSpecFields(ApiModel):
    """The fields of a core ``PodSpec`` (containers optional), inlined into every component."""

    volumes: list[JsonObject] | None = Field(default=None, description="Pod volumes.")
    init_containers: list[JsonObject] | None = Field(
        default=None, description="Init containers of the pod."
    )
    containers: list[Container] | None = Field(
        default=None,
        description=(
            "Containers of a custom component; the first one serves the model. Do not combine "
            "with a framework (sklearn, tensorflow, ...)."
        ),
    )
    ephemeral_containers: list[JsonObject] | None = Field(
        default=None, description="Ephemeral debugging containers."
    )
    restart_policy: str | None = Field(default=None, description="Pod restart policy.")
    termination_grace_period_seconds: int | None = Field(
        default=None, description="Seconds the pod gets to stop gracefully."
    )
    active_deadline_seconds: int | None = Field(
        default=None, description="Seconds the pod may run before it is stopped."
    )
    dns_policy: str | None = Field(default=None, description="DNS policy of the pod.")
    node_selector: dict[str, str] | None = Field(
        default=None, description="Node labels the pod must be scheduled onto."
    )
    service_account_name: str | None = Field(
        default=None,
        description="Service account of the pod; its secrets give the storage credentials.",
    )
    service_account: str | None = Field(
        default=None, description="Deprecated alias of serviceAccountName."
    )
    automount_service_account_token: bool | None = Field(
        default=None, description="Mount the service account token."
    )
    node_name: str | None = Field(default=None, description="Node to run on, bypassing scheduling.")
    host_network: bool | None = Field(default=None, description="Use the host's network namespace.")
    host_pid: bool | None = Field(
        default=None, alias="hostPID", description="Use the host's PID namespace."
    )
    host_ipc: bool | None = Field(
        default=None, alias="hostIPC", description="Use the host's IPC namespace."
    )
    share_process_namespace: bool | None = Field(
        default=None, description="Share one process namespace between the containers."
    )
    security_context: JsonObject | None = Field(
        default=None, description="Pod-level security attributes (core PodSecurityContext)."
    )
    image_pull_secrets: list[JsonObject] | None = Field(
        default=None, description="Secrets used to pull the images."
    )
    hostname: str | None = Field(default=None, description="Hostname of the pod.")
    subdomain: str | None = Field(default=None, description="Subdomain of the pod.")
    affinity: JsonObject | None = Field(default=None, description="Scheduling constraints.")
    scheduler_name: str | None = Field(default=None, description="Scheduler of the pod.")
    tolerations: list[JsonObject] | None = Field(default=None, description="Pod tolerations.")
    host_aliases: list[JsonObject] | None = Field(
        default=None, description="Extra entries of the pod's /etc/hosts."
    )
    priority_class_name: str | None = Field(default=None, description="Priority class of the pod.")
    priority: int | None = Field(default=None, description="Priority value of the pod.")
    dns_config: JsonObject | None = Field(default=None, description="DNS parameters of the pod.")
    readiness_gates: list[JsonObject] | None = Field(
        default=None, description="Extra conditions for pod readiness."
    )
    runtime_class_name: str | None = Field(default=None, description="RuntimeClass of the pod.")
    enable_service_links: bool | None = Field(
        default=None, description="Inject service environment variables."
    )
    preemption_policy: str | None = Field(
        default=None, description="Preemption policy: Never or PreemptLowerPriority."
    )
    overhead: dict[str, Quantity] | None = Field(
        default=None, description="Resource overhead of the pod's runtime class."
    )
    topology_spread_constraints: list[JsonObject] | None = Field(
        default=None, description="How pods spread across topology domains."
    )
    set_hostname_as_fqdn: bool | None = Field(
        default=None,
        alias="setHostnameAsFQDN",
        description="Set the pod's hostname to its fully qualified domain name.",
    )

    def custom_containers(self) -> list[Container]:
        """The custom containers (empty when the component uses a framework)."""
        return list(self.containers or [])
