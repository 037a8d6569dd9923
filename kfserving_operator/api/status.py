"""The InferenceService status: URLs, per-component revisions and traffic, conditions.

Status models ignore unknown keys (a tolerant reader: the CRD schema prunes them anyway, and a
newer operator version may have written more), unlike the spec models, which reject them.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from kfserving_operator.api.base import ApiModel
from kfserving_operator.api.constants import READY

ConditionStatus = Literal["True", "False", "Unknown"]
CONDITION_STATUSES: Final = ("True", "False", "Unknown")

# Condition types: <Component>Ready, <Component>RouteReady, <Component>ConfigurationReady,
# with upstream's one irregular name kept: every KFServing and KServe release writes the
# explainer's route condition as "ExplainerRoutesReady" (plural). KFServing 0.6's typo
# "TransformerConfigurationeReady" was fixed by later KServe, and is fixed here too.
PREDICTOR_READY: Final = "PredictorReady"
TRANSFORMER_READY: Final = "TransformerReady"
EXPLAINER_READY: Final = "ExplainerReady"
PREDICTOR_ROUTE_READY: Final = "PredictorRouteReady"
TRANSFORMER_ROUTE_READY: Final = "TransformerRouteReady"
EXPLAINER_ROUTE_READY: Final = "ExplainerRoutesReady"
PREDICTOR_CONFIGURATION_READY: Final = "PredictorConfigurationReady"
TRANSFORMER_CONFIGURATION_READY: Final = "TransformerConfigurationReady"
EXPLAINER_CONFIGURATION_READY: Final = "ExplainerConfigurationReady"


class StatusModel(ApiModel):
    """Base of status types: unknown keys are dropped instead of rejected."""

    model_config = ApiModel.model_config | {"extra": "ignore"}


class Addressable(StatusModel):
    """An address inside the cluster."""

    url: str | None = Field(default=None, description="URL of the address.")


class TrafficTarget(StatusModel):
    """One Knative traffic target of a component."""

    tag: str | None = Field(
        default=None, description="Tag of the target (prev, latest); gives it its own URL."
    )
    revision_name: str | None = Field(default=None, description="Revision receiving the traffic.")
    configuration_name: str | None = Field(
        default=None, description="Configuration whose latest ready revision receives the traffic."
    )
    latest_revision: bool | None = Field(
        default=None, description="True when the target follows the latest ready revision."
    )
    percent: int | None = Field(
        default=None, description="Percentage of traffic sent to this target."
    )
    url: str | None = Field(default=None, description="URL of a tagged target.")


class ComponentStatusSpec(StatusModel):
    """Revisions, traffic and URLs of one component."""

    latest_ready_revision: str | None = Field(
        default=None, description="Latest revision that became ready."
    )
    latest_created_revision: str | None = Field(
        default=None, description="Latest revision created from the spec."
    )
    previous_rolledout_revision: str | None = Field(
        default=None, description="Revision that served 100% before the latest roll-out."
    )
    latest_rolledout_revision: str | None = Field(
        default=None, description="Latest revision that served 100% of the traffic."
    )
    traffic: list[TrafficTarget] | None = Field(
        default=None, description="Traffic split of the component, as Knative reports it."
    )
    url: str | None = Field(default=None, description="External URL of the component.")
    address: Addressable | None = Field(
        default=None, description="Cluster-internal address of the component."
    )


class Condition(StatusModel):
    """A Knative-style condition."""

    type: str = Field(description="Type of the condition, e.g. Ready or PredictorReady.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    severity: str | None = Field(
        default=None, description="Error (empty), Warning or Info; Info never affects Ready."
    )
    last_transition_time: str | None = Field(
        default=None, description="When the condition last changed (RFC 3339)."
    )
    reason: str | None = Field(
        default=None,
        description=(
            "Short machine-readable reason, CamelCase, except upstream's IngressReady reasons "
            "such as 'Predictor ingress not created'."
        ),
    )
    message: str | None = Field(default=None, description="Human-readable details.")


class InferenceServiceStatus(StatusModel):
    """Observed state of an InferenceService."""

    observed_generation: int | None = Field(
        default=None, description="Generation of the spec the status was computed from."
    )
    conditions: list[Condition] | None = Field(
        default=None, description="Conditions, sorted by type; Ready summarises them."
    )
    annotations: dict[str, str] | None = Field(
        default=None, description="Extra status information."
    )
    url: str | None = Field(default=None, description="External URL of the InferenceService.")
    address: Addressable | None = Field(
        default=None, description="Cluster-internal address including the predict path."
    )
    components: dict[str, ComponentStatusSpec] | None = Field(
        default=None, description="Status of each component, keyed predictor|transformer|explainer."
    )
    deployment_mode: str | None = Field(
        default=None,
        description="How the InferenceService is served, Serverless or RawDeployment; set by "
        "the operator once, then fixed.",
    )

    def condition(self, type_: str) -> Condition | None:
        """The condition of the given type, if any."""
        for cond in self.conditions or ():
            if cond.type == type_:
                return cond
        return None

    def is_ready(self) -> bool:
        """True when the Ready condition is True."""
        ready = self.condition(READY)
        return ready is not None and ready.status == "True"
