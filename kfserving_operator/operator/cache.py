"""What the watches have told us: InferenceServices and their children, by parent key.

Reconciles read from here instead of the API, so an unchanged world costs no requests at
all. Children are attributed to their parent through the controller ownerReference, which
every child the operator creates carries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kfserving_operator.api import constants as c

IsvcKey = tuple[str, str]  # (namespace, name)


def slim(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without ``metadata.managedFields``, which we never read.

    managedFields is often the largest part of an object; dropping it roughly halves the
    memory the cache needs per InferenceService.
    """
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def controller_owner(obj: dict[str, Any]) -> str | None:
    """The name of the InferenceService that controls ``obj``, if any."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if (
            ref.get("controller")
            and ref.get("kind") == c.KIND
            and str(ref.get("apiVersion", "")).startswith(f"{c.GROUP}/")
        ):
            return str(ref.get("name"))
    return None


@dataclass
class Children:
    """The observed children of one InferenceService."""

    ksvcs: dict[str, dict[str, Any]] = field(default_factory=dict)  # component -> object
    virtual_service: dict[str, Any] | None = None
    service: dict[str, Any] | None = None

    def is_empty(self) -> bool:
        return not self.ksvcs and self.virtual_service is None and self.service is None


class ObjectCache:
    """InferenceServices and their children as last seen on the watches."""

    def __init__(self) -> None:
        self.isvcs: dict[IsvcKey, dict[str, Any]] = {}
        self._children: dict[IsvcKey, Children] = {}

    def isvc_keys(self) -> Iterator[IsvcKey]:
        return iter(list(self.isvcs))

    def children(self, key: IsvcKey) -> Children:
        return self._children.get(key) or Children()

    def put_isvc(self, obj: dict[str, Any]) -> IsvcKey:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        self.isvcs[key] = slim(obj)
        return key

    def drop_isvc(self, key: IsvcKey) -> None:
        self.isvcs.pop(key, None)

    def put_child(self, obj: dict[str, Any], *, deleted: bool = False) -> IsvcKey | None:
        """Record (or forget) a child; returns its parent's key, or None if it has none."""
        parent = controller_owner(obj)
        if parent is None:
            return None
        obj = slim(obj)
        key = (obj["metadata"]["namespace"], parent)
        children = self._children.setdefault(key, Children())
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if api_version == c.KNATIVE_API_VERSION and kind == "Service":
            component = obj["metadata"].get("labels", {}).get(c.COMPONENT_LABEL)
            if component is None:
                return key
            if deleted:
                children.ksvcs.pop(component, None)
            else:
                children.ksvcs[component] = obj
        elif kind == "VirtualService":
            children.virtual_service = None if deleted else obj
        elif api_version == "v1" and kind == "Service":
            children.service = None if deleted else obj
        if children.is_empty():
            self._children.pop(key, None)
        return key
