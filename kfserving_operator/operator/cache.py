"""What the watches have told us: InferenceServices and their children, by parent key.

Reconciles read from here instead of the API, so an unchanged world costs no requests at
all. Children are attributed to their parent through the controller ownerReference, which
every child the operator creates carries.

Objects are kept as compact JSON, not as dicts: a parsed object costs several times its JSON
size in Python objects, and at thousands of InferenceServices the cache is most of the
operator's memory. Decoding the few objects one reconcile needs is cheap next to that.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from kfserving_operator.api import constants as c

IsvcKey = tuple[str, str]  # (namespace, name)
TmKey = tuple[str, str]  # (namespace, TrainedModel name)
ChildKey = tuple[str, str, str, str]  # (apiVersion, kind, namespace, name)


# msgspec: compact JSON both ways, several times faster than the json module; every object
# listed at start and every watch event goes through here.
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def encode(obj: dict[str, Any]) -> bytes:
    """Compact JSON of ``obj`` without ``metadata.managedFields``, which we never read."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return _encoder.encode(obj)


def decode(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    obj: dict[str, Any] = _decoder.decode(data)
    return obj


def identity(obj: dict[str, Any]) -> ChildKey:
    # Interned: thousands of keys held in the cache share a handful of distinct apiVersion,
    # kind and namespace strings, instead of a fresh copy from every decoded object.
    meta = obj.get("metadata", {})
    return (sys.intern(str(obj.get("apiVersion", ""))), sys.intern(str(obj.get("kind", ""))),
            sys.intern(str(meta.get("namespace", ""))), str(meta.get("name", "")))


# Raw deployment mode's children, kept by "<kind>/<name>" (a component has several).
RAW_KINDS = frozenset({(c.APPS_API_VERSION, "Deployment"),
                       (c.HPA_API_VERSION, "HorizontalPodAutoscaler"),
                       (c.INGRESS_API_VERSION, "Ingress"),
                       (c.GATEWAY_API_VERSION, "HTTPRoute")})


def slot(obj: dict[str, Any]) -> tuple[str, str] | None:
    """Where a child sits among its parent's children: ("ksvc", component), ("vs", ""),
    ("service", ""), ("raw", "<kind>/<name>"), or None for anything else (a Knative Service
    without a component)."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    name = str(obj.get("metadata", {}).get("name", ""))
    if (api_version, kind) in RAW_KINDS or (
            api_version == "v1" and kind == "Service"
            and (obj.get("metadata", {}).get("labels") or {}).get(c.COMPONENT_LABEL)):
        return ("raw", f"{kind}/{name}")
    if api_version == c.KNATIVE_API_VERSION and kind == "Service":
        component = obj.get("metadata", {}).get("labels", {}).get(c.COMPONENT_LABEL)
        return ("ksvc", str(component)) if component is not None else None
    if kind == "VirtualService":
        return ("vs", "")
    if api_version == "v1" and kind == "Service":
        return ("service", "")
    return None


def ready_status(obj: dict[str, Any]) -> str:
    """The status of an object's Ready condition: True, False or Unknown (also when absent)."""
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            return str(condition.get("status") or "Unknown")
    return "Unknown"


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
    """The observed children of one InferenceService (decoded)."""

    ksvcs: dict[str, dict[str, Any]] = field(default_factory=dict)  # component -> object
    virtual_service: dict[str, Any] | None = None
    service: dict[str, Any] | None = None
    # raw deployment mode: (kind, name) -> object
    raw: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not self.ksvcs and self.virtual_service is None and self.service is None \
            and not self.raw

    def counterpart(self, desired: dict[str, Any]) -> dict[str, Any] | None:
        """The observed child that ``desired`` would become, if it exists."""
        where = slot(desired)
        if where is None:
            return None
        kind, component = where
        if kind == "raw":
            child_kind, _, name = component.partition("/")
            return self.raw.get((child_kind, name))
        if kind == "ksvc":
            return self.ksvcs.get(component)
        return self.virtual_service if kind == "vs" else self.service


@dataclass
class _StoredChildren:
    ksvcs: dict[str, bytes] = field(default_factory=dict)
    virtual_service: bytes | None = None
    service: bytes | None = None
    raw: dict[str, bytes] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not self.ksvcs and self.virtual_service is None and self.service is None \
            and not self.raw


class ObjectCache:
    """InferenceServices and their children as last seen on the watches."""

    def __init__(self) -> None:
        self._isvcs: dict[IsvcKey, bytes] = {}
        self._children: dict[IsvcKey, _StoredChildren] = {}
        # resourceVersion of every stored object, so an event repeating what we hold (the
        # initial listing after priming, say) costs a dict lookup, not a decode and encode.
        self._versions: dict[ChildKey, str] = {}
        # Each InferenceService's Ready status, kept as objects come and go, for the metrics.
        self._ready: dict[IsvcKey, str] = {}

    def ready_counts(self) -> dict[str, int]:
        """How many InferenceServices have Ready True, False or Unknown."""
        return dict(collections.Counter(self._ready.values()))

    def is_current(self, obj: dict[str, Any]) -> bool:
        """True when ``obj`` is exactly the version already stored."""
        version = obj.get("metadata", {}).get("resourceVersion")
        return version is not None and self._versions.get(identity(obj)) == version

    def _remember(self, obj: dict[str, Any], deleted: bool = False) -> None:
        key = identity(obj)
        version = obj.get("metadata", {}).get("resourceVersion")
        if deleted or version is None:
            self._versions.pop(key, None)
        else:
            self._versions[key] = str(version)

    def __len__(self) -> int:
        return len(self._isvcs)

    def __contains__(self, key: object) -> bool:
        return key in self._isvcs

    def isvc_keys(self) -> Iterator[IsvcKey]:
        return iter(list(self._isvcs))

    def isvcs(self) -> Iterator[dict[str, Any]]:
        """Every stored InferenceService, decoded one at a time."""
        for data in list(self._isvcs.values()):
            obj = decode(data)
            if obj is not None:
                yield obj

    def children_of(self, api_version: str, kind: str) -> Iterator[dict[str, Any]]:
        """Every stored child of one type, decoded one at a time."""
        for stored in list(self._children.values()):
            for data in [*stored.ksvcs.values(), stored.virtual_service, stored.service,
                         *stored.raw.values()]:
                obj = decode(data)
                if obj is not None and obj.get("apiVersion") == api_version \
                        and obj.get("kind") == kind:
                    yield obj

    def get_isvc(self, key: IsvcKey) -> dict[str, Any] | None:
        return decode(self._isvcs.get(key))

    def put_isvc(self, obj: dict[str, Any]) -> IsvcKey:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        self._isvcs[key] = encode(obj)
        self._ready[key] = ready_status(obj)
        self._remember(obj)
        return key

    def set_isvc_status(self, key: IsvcKey, uid: str | None, status: dict[str, Any]) -> None:
        """Record a status we wrote, so the next reconcile compares against it."""
        cached = self.get_isvc(key)
        if cached is not None and cached.get("metadata", {}).get("uid") == uid:
            self._isvcs[key] = encode({**cached, "status": status})
            self._ready[key] = ready_status({"status": status})
            # The stored copy no longer matches any server version: let the next event in.
            self._versions.pop((c.API_VERSION, c.KIND, key[0], key[1]), None)

    def drop_isvc(self, key: IsvcKey) -> None:
        self._isvcs.pop(key, None)
        self._ready.pop(key, None)
        self._versions.pop((c.API_VERSION, c.KIND, key[0], key[1]), None)

    def children(self, key: IsvcKey) -> Children:
        stored = self._children.get(key)
        if stored is None:
            return Children()
        return Children(
            ksvcs={component: obj for component, data in stored.ksvcs.items()
                   if (obj := decode(data)) is not None},
            virtual_service=decode(stored.virtual_service),
            service=decode(stored.service),
            raw={(kind, name): obj for where, data in stored.raw.items()
                 for kind, _, name in [where.partition("/")]
                 if (obj := decode(data)) is not None},
        )

    def put_child(self, obj: dict[str, Any], *, deleted: bool = False) -> IsvcKey | None:
        """Record (or forget) a child; returns its parent's key, or None if it has none."""
        parent = controller_owner(obj)
        if parent is None:
            return None
        key = (obj["metadata"]["namespace"], parent)
        where = slot(obj)
        if where is None:
            return key
        self._remember(obj, deleted)
        stored = self._children.setdefault(key, _StoredChildren())
        data = None if deleted else encode(obj)
        kind, component = where
        if kind == "raw":
            if data is None:
                stored.raw.pop(component, None)
            else:
                stored.raw[component] = data
        elif kind == "ksvc":
            if data is None:
                stored.ksvcs.pop(component, None)
            else:
                stored.ksvcs[component] = data
        elif kind == "vs":
            stored.virtual_service = data
        else:
            stored.service = data
        if stored.is_empty():
            self._children.pop(key, None)
        return key


def parent_key(obj: dict[str, Any]) -> IsvcKey:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    parent = spec.get("inferenceService") if isinstance(spec, dict) else None
    return (str(meta.get("namespace") or ""), str(parent or ""))


class TrainedModelCache:
    """TrainedModels as the watch delivered them, grouped by parent (compact JSON, as
    the InferenceService cache keeps its objects)."""

    def __init__(self) -> None:
        self._by_parent: dict[IsvcKey, dict[str, bytes]] = {}
        self._parent_of: dict[TmKey, IsvcKey] = {}
        self._versions: dict[TmKey, str] = {}

    @staticmethod
    def key(obj: dict[str, Any]) -> TmKey:
        meta = obj.get("metadata") or {}
        return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))

    def is_current(self, obj: dict[str, Any]) -> bool:
        version = (obj.get("metadata") or {}).get("resourceVersion")
        return version is not None and self._versions.get(self.key(obj)) == str(version)

    def get(self, key: TmKey) -> dict[str, Any] | None:
        parent = self._parent_of.get(key)
        data = self._by_parent.get(parent, {}).get(key[1]) if parent is not None else None
        return decode(data)

    def put(self, obj: dict[str, Any]) -> IsvcKey | None:
        """Store ``obj``; returns the parent it had before when that changed."""
        key = self.key(obj)
        new_parent = parent_key(obj)
        old_parent = self._parent_of.get(key)
        if old_parent is not None and old_parent != new_parent:
            self._remove(key, old_parent)
        self._by_parent.setdefault(new_parent, {})[key[1]] = encode(obj)
        self._parent_of[key] = new_parent
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version is not None:
            self._versions[key] = str(version)
        return old_parent if old_parent != new_parent else None

    def drop(self, key: TmKey) -> IsvcKey | None:
        parent = self._parent_of.pop(key, None)
        self._versions.pop(key, None)
        if parent is not None:
            self._remove(key, parent)
        return parent

    def _remove(self, key: TmKey, parent: IsvcKey) -> None:
        models = self._by_parent.get(parent)
        if models is not None:
            models.pop(key[1], None)
            if not models:
                del self._by_parent[parent]

    def set_status(self, key: TmKey, status: dict[str, Any]) -> None:
        """Record a status we wrote, so the next reconcile compares against it."""
        current = self.get(key)
        if current is not None:
            parent = self._parent_of[key]
            self._by_parent[parent][key[1]] = encode({**current, "status": status})
            self._versions.pop(key, None)

    def models(self, parent: IsvcKey) -> list[dict[str, Any]]:
        return [decode(data) or {} for data in self._by_parent.get(parent, {}).values()]

    def has_models(self, parent: IsvcKey) -> bool:
        return parent in self._by_parent

    def parents(self) -> list[IsvcKey]:
        return list(self._by_parent)
