"""Fields every component shares: scaling, rollout, payload logging and batching.

``ComponentExtensionSpec`` is inlined into the predictor, the transformer and the explainer.
Range and enum rules are not enforced while parsing: the validator reports all of them at once
with the field path and the allowed values, and the CRD schema carries the same bounds.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, NamedTuple

from pydantic import Field

from kfserving_operator.api.base import ApiModel
from kfserving_operator.api.constants import LOGGER_MODES

SCALE_METRICS: Final = ("cpu", "memory", "concurrency", "rps")
PROTOCOL_VERSIONS: Final = ("v1", "v2")
PROTOCOL_V1: Final = "v1"
PROTOCOL_V2: Final = "v2"

# The name an implementation is reported under when the component uses its own containers.
CUSTOM: Final = "custom"
# The field that holds a custom implementation, as listed in validation messages.
CUSTOM_FIELD: Final = "containers"


class Implementation(NamedTuple):
    """The one implementation of a component.

    ``name`` is the field name (``sklearn``, ``alibi``, ...) or ``custom`` for user containers;
    ``spec`` is the framework spec (a ``PredictorExtensionSpec`` or ``ExplainerExtensionSpec``
    subclass), or the first custom ``Container``; all of them are ``ContainerFields``. Typed
    ``Any`` so callers can pass it where they know the concrete type from ``name``.
    """

    name: str
    spec: Any


class OneOfImplementations:
    """A component implemented by one of its framework fields, or by custom ``containers``.

    Subclasses name their framework fields in ``framework_fields`` (in the order validation
    reports them); custom containers always come last.
    """

    framework_fields: ClassVar[tuple[str, ...]] = ()

    def implementations(self) -> list[Implementation]:
        """Every implementation present: frameworks in order, then custom containers."""
        found = [
            Implementation(name, getattr(self, name))
            for name in self.framework_fields
            if getattr(self, name) is not None
        ]
        containers = getattr(self, "containers", None)
        if containers:
            found.append(Implementation(CUSTOM, containers[0]))
        return found

    def implementation(self) -> Implementation | None:
        """The single implementation, or None when there is none or more than one."""
        found = self.implementations()
        return found[0] if len(found) == 1 else None


class LoggerSpec(ApiModel):
    """Payload logging: the agent sidecar sends requests and/or responses as CloudEvents."""

    url: str | None = Field(
        default=None,
        description="http(s) URL of the event sink; the configured logger.defaultUrl when unset.",
    )
    mode: str | None = Field(
        default=None,
        description="What to log: all, request or response. Defaults to all.",
        json_schema_extra={"enum": list(LOGGER_MODES)},
    )


class BatcherSpec(ApiModel):
    """Server-side request batching through the agent sidecar (predictor and transformer)."""

    max_batch_size: int | None = Field(
        default=None,
        description="Largest batch the agent forms (at least 1).",
        json_schema_extra={"minimum": 1},
    )
    max_latency: int | None = Field(
        default=None,
        description="Longest time in milliseconds a request waits for a batch (at least 1).",
        json_schema_extra={"minimum": 1},
    )
    timeout: int | None = Field(
        default=None,
        description="Timeout of a batch in seconds (at least 1).",
        json_schema_extra={"minimum": 1},
    )


class ComponentExtensionSpec(ApiModel):
    """Deployment settings shared by predictor, transformer and explainer."""

    min_replicas: int | None = Field(
        default=None,
        description="Minimum number of replicas; 0 allows scale to zero. Defaults to 1.",
        json_schema_extra={"minimum": 0},
    )
    max_replicas: int | None = Field(
        default=None,
        description="Maximum number of replicas; 0 or unset means no upper bound.",
        json_schema_extra={"minimum": 0},
    )
    scale_target: int | None = Field(
        default=None,
        description="Autoscaling target value of scaleMetric per replica (at least 1).",
        json_schema_extra={"minimum": 1},
    )
    scale_metric: str | None = Field(
        default=None,
        description=(
            "Autoscaling metric: concurrency or rps (Knative KPA), cpu or memory (needs the "
            "autoscaling.knative.dev/class: hpa.autoscaling.knative.dev annotation)."
        ),
        json_schema_extra={"enum": list(SCALE_METRICS)},
    )
    container_concurrency: int | None = Field(
        default=None,
        description=(
            "Hard limit of concurrent requests per replica (0 = unlimited); also the number "
            "of workers of the Python model servers."
        ),
        json_schema_extra={"minimum": 0},
    )
    timeout: int | None = Field(
        default=None,
        description="Request timeout in seconds (at least 1); Knative's default when unset.",
        json_schema_extra={"minimum": 1},
    )
    canary_traffic_percent: int | None = Field(
        default=None,
        description=(
            "Percentage (0-100) of traffic sent to the latest revision; the rest goes to the "
            "previously rolled-out revision. Unset means 100."
        ),
        json_schema_extra={"minimum": 0, "maximum": 100},
    )
    logger: LoggerSpec | None = Field(default=None, description="Payload logging settings.")
    batcher: BatcherSpec | None = Field(default=None, description="Request batching settings.")
