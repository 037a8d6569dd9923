"""The explainer: Alibi, AIX, ART, or custom containers."""

from __future__ import annotations

from typing import ClassVar, Final

from pydantic import Field

from kfserving_operator.api.components import ComponentExtensionSpec, OneOfImplementations
from kfserving_operator.api.podspec import ContainerFields, PodSpecFields

EXPLAINER_FRAMEWORKS: Final = ("alibi", "aix", "art")
ALIBI_TYPES: Final = (
    "AnchorTabular",
    "AnchorImages",
    "AnchorText",
    "Counterfactuals",
    "Contrastive",
)
AIX_TYPES: Final = ("LimeImages",)
ART_TYPES: Final = ("SquareAttack",)
EXPLAINER_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "alibi": ALIBI_TYPES,
    "aix": AIX_TYPES,
    "art": ART_TYPES,
}


class ExplainerExtensionSpec(ContainerFields):
    """Fields every explainer framework has, plus an inlined core Container."""

    storage_uri: str | None = Field(
        default=None,
        description="Where the explainer artefact is (same schemes as the predictor's storageUri).",
    )
    runtime_version: str | None = Field(
        default=None,
        description="Tag of the explainer image; defaulted from inferenceservice-config.",
    )
    config: dict[str, str] | None = Field(
        default=None,
        description="Explainer options, passed as --<key> <value> arguments in key order.",
    )


class AlibiExplainerSpec(ExplainerExtensionSpec):
    """Alibi explainer server."""

    type: str = Field(
        description="Explanation method: " + ", ".join(ALIBI_TYPES) + ".",
        json_schema_extra={"enum": list(ALIBI_TYPES)},
    )


class AIXExplainerSpec(ExplainerExtensionSpec):
    """AI Explainability 360 explainer server."""

    type: str = Field(
        description="Explanation method: " + ", ".join(AIX_TYPES) + ".",
        json_schema_extra={"enum": list(AIX_TYPES)},
    )


class ARTExplainerSpec(ExplainerExtensionSpec):
    """Adversarial Robustness Toolbox explainer server."""

    type: str = Field(
        description="Adversarial attack: " + ", ".join(ART_TYPES) + ".",
        json_schema_extra={"enum": list(ART_TYPES)},
    )


class ExplainerSpec(OneOfImplementations, PodSpecFields, ComponentExtensionSpec):
    """The explainer: exactly one of alibi, aix, art, or custom containers."""

    framework_fields: ClassVar[tuple[str, ...]] = EXPLAINER_FRAMEWORKS

    alibi: AlibiExplainerSpec | None = Field(default=None, description="Alibi explainer.")
    aix: AIXExplainerSpec | None = Field(default=None, description="AIX360 explainer.")
    art: ARTExplainerSpec | None = Field(default=None, description="ART explainer.")

    def framework(self) -> ExplainerExtensionSpec | None:
        """The framework spec when the explainer uses exactly one framework."""
        impl = self.implementation()
        if impl is None or not isinstance(impl.spec, ExplainerExtensionSpec):
            return None
        return impl.spec
