"""The transformer: custom containers that pre- and post-process requests for the predictor."""

from __future__ import annotations

from typing import ClassVar, Final

from kfserving_operator.api.components import ComponentExtensionSpec, OneOfImplementations
from kfserving_operator.api.podspec import PodSpecFields

TRANSFORMER_FRAMEWORKS: Final[tuple[str, ...]] = ()


class TransformerSpec(OneOfImplementations, PodSpecFields, ComponentExtensionSpec):
    """The transformer: custom containers only; the first one is the transformer server."""

    framework_fields: ClassVar[tuple[str, ...]] = TRANSFORMER_FRAMEWORKS
