"""The InferenceService resource: metadata, spec (predictor, transformer, explainer) and status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import Field

from kfserving_operator.api.base import ApiModel
from kfserving_operator.api.constants import (
    API_VERSION,
    COMPONENTS,
    ENABLE_TAG_ROUTING_ANNOTATION,
    EXPLAINER,
    KIND,
    PREDICTOR,
    TRANSFORMER,
)
from kfserving_operator.api.explainer import ExplainerSpec
from kfserving_operator.api.predictor import PredictorSpec
from kfserving_operator.api.status import InferenceServiceStatus
from kfserving_operator.api.transformer import TransformerSpec

ComponentSpec = PredictorSpec | TransformerSpec | ExplainerSpec


class ObjectMeta(ApiModel):
    """Object metadata. The usual fields are typed; server-managed extras are kept as they are."""

    model_config = ApiModel.model_config | {"extra": "allow"}

    name: str | None = Field(default=None, description="Name of the object.")
    generate_name: str | None = Field(
        default=None, description="Prefix of a server-generated name."
    )
    namespace: str | None = Field(default=None, description="Namespace of the object.")
    labels: dict[str, str] | None = Field(default=None, description="Labels.")
    annotations: dict[str, str] | None = Field(default=None, description="Annotations.")
    uid: str | None = Field(default=None, description="Server-assigned unique id.")
    resource_version: str | None = Field(default=None, description="Version for concurrency.")
    generation: int | None = Field(default=None, description="Generation of the spec.")
    creation_timestamp: str | None = Field(default=None, description="Creation time.")
    deletion_timestamp: str | None = Field(default=None, description="Deletion request time.")
    finalizers: list[str] | None = Field(default=None, description="Finalizers.")
    owner_references: list[dict[str, Any]] | None = Field(
        default=None, description="Owners of the object."
    )


class InferenceServiceSpec(ApiModel):
    """Desired state: a predictor, and optionally a transformer and an explainer."""

    predictor: PredictorSpec = Field(description="The model server. Required.")
    transformer: TransformerSpec | None = Field(
        default=None, description="Pre- and post-processing in front of the predictor."
    )
    explainer: ExplainerSpec | None = Field(
        default=None, description="Model explanations served at :explain."
    )


class Resource(ApiModel):
    """What every resource model has: metadata, parsing from the wire, name and namespace."""

    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Object metadata.")

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Self:
        """Parse an object as the API returns it (raises pydantic.ValidationError)."""
        return cls.model_validate(dict(data))

    @property
    def name(self) -> str:
        """metadata.name ('' when not set yet)."""
        return self.metadata.name or ""

    @property
    def namespace(self) -> str:
        """metadata.namespace ('' when not set)."""
        return self.metadata.namespace or ""


class InferenceService(Resource):
    """A served machine-learning model (serving.kubeflow.org/v1beta1 InferenceService)."""

    api_version: str = Field(default=API_VERSION, description="serving.kubeflow.org/v1beta1.")
    kind: str = Field(default=KIND, description="InferenceService.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Object metadata.")
    spec: InferenceServiceSpec = Field(description="Desired state of the InferenceService.")
    status: InferenceServiceStatus | None = Field(
        default=None, description="Observed state of the InferenceService."
    )

    @property
    def annotations(self) -> dict[str, str]:
        """metadata.annotations (empty dict when unset)."""
        return dict(self.metadata.annotations or {})

    @property
    def labels(self) -> dict[str, str]:
        """metadata.labels (empty dict when unset)."""
        return dict(self.metadata.labels or {})

    def tag_routing_enabled(self) -> bool:
        """True when the isvc asks for a ``latest`` tag on the latest revision."""
        return self.annotations.get(ENABLE_TAG_ROUTING_ANNOTATION) == "true"

    def component(self, name: str) -> ComponentSpec | None:
        """The spec of ``predictor``, ``transformer`` or ``explainer`` (None if absent)."""
        if name == PREDICTOR:
            return self.spec.predictor
        if name == TRANSFORMER:
            return self.spec.transformer
        if name == EXPLAINER:
            return self.spec.explainer
        raise ValueError(f"unknown component {name!r}; expected one of {', '.join(COMPONENTS)}")

    def components(self) -> list[tuple[str, ComponentSpec]]:
        """The components present, in reconcile order (predictor, transformer, explainer)."""
        found: list[tuple[str, ComponentSpec]] = []
        for name in COMPONENTS:
            spec = self.component(name)
            if spec is not None:
                found.append((name, spec))
        return found
