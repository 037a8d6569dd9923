"""The transformer: custom containers that pre- and post-process requests for the predictor."""

from __future__ import annotations

from typing import Final

from kfserving_operator.api.components import CUSTOM, ComponentExtensionSpec, Implementation
from kfserving_operator.api.podspec import PodSpecFields

TRANSFORMER_FRAMEWORKS: Final[tuple[str, ...]] = ()


class TransformerSpec(PodSpecFields, ComponentExtensionSpec):
    """The transformer: custom containers only; the first one is the transformer server."""

    def implementations(self) -> list[Implementation]:
        """The custom implementation, if containers are given."""
        return [Implementation(CUSTOM, self.containers[0])] if self.containers else []

    def implementation(self) -> Implementation | None:
        """The single implementation, or None without containers."""
        found = self.implementations()
        return found[0] if len(found) == 1 else None
