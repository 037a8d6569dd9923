"""The pydantic base every API model shares.

Fields are snake_case in Python and camelCase on the wire, like every Kubernetes API.
Unknown fields are rejected (`extra="forbid"`), so the models and the CRD schema agree on what
exists; core Kubernetes subtrees that we do not type are plain dicts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base for API types: camelCase aliases, population by name, no unknown fields."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as it is written to the API: camelCase keys, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
