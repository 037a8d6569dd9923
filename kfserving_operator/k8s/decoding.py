"""Decode what the API server sends without letting one object take the process down.

The API server stores JSON nested up to 10 000 levels deep in any field that preserves
unknown fields (a Knative Service's template, a VirtualService's spec, an InferenceService
stored while the webhooks were out of the path). Python's JSON decoders give up near 1 000
levels with a ``RecursionError``, which is not a decoding error anyone catches: raised in a
watch stream or a LIST, it ends the operator, and every restart ends the same way.

So decoding is done in two steps. The fast path is the plain decoder. Only when it hits the
recursion limit is the text *pruned*: every value that starts deeper than :data:`MAX_DEPTH`
levels is replaced by the string :data:`PRUNED`, found with a regular-expression scan that
never recurses. The result decodes; the other objects of the same LIST page or watch line
are intact; and each object that was pruned is recorded in :data:`POISONED`, so that the
handlers skip it (a truncated object must never be reconciled or cached) and report it once.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from kfserving_operator import counters

# How deep a value may start below the document root before it is pruned. Kubernetes
# objects, even CRDs with full pod schemas, stay far below this; a LIST page or a watch
# event adds three levels above the object.
MAX_DEPTH: Final = 100
PRUNED: Final = f"<kfserving-operator: nested deeper than {MAX_DEPTH} levels, not decoded>"

# One token: a whole JSON string (so brackets inside strings are skipped), or a bracket.
_TOKEN: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_OPENERS: Final = frozenset("[{")


def prune(text: str, max_depth: int = MAX_DEPTH) -> str:
    """``text`` with every value opening deeper than ``max_depth`` replaced by :data:`PRUNED`.

    Works on any text the JSON decoder would accept; the scan is iterative, so the nesting
    depth of the input does not matter.
    """
    out: list[str] = []
    depth = 0
    last = 0
    skip_from: int | None = None  # where the value being cut out started
    cut_depth = 0  # the depth it started at
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token[0] == '"':
            continue
        if token in _OPENERS:
            if skip_from is None and depth >= max_depth:
                skip_from = match.start()
                cut_depth = depth
            depth += 1
        else:
            depth -= 1
            if skip_from is not None and depth == cut_depth:
                out.append(text[last:skip_from])
                out.append(json.dumps(PRUNED))
                last = match.end()
                skip_from = None
    out.append(text[last:])
    return "".join(out)


def pruned_path(obj: Any) -> str | None:
    """The field path of the first pruned value in ``obj`` (``spec.a[0].b``), or None."""
    stack: list[tuple[Any, str]] = [(obj, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                stack.append((item, f"{path}.{key}" if path else str(key)))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                stack.append((item, f"{path}[{index}]"))
        elif value == PRUNED:
            return path or "(object)"
    return None


def deep_path(obj: Any, limit: int) -> str | None:
    """The path of the first value nested more than ``limit`` levels in ``obj`` (or pruned
    while decoding), or None; iterative, so any depth is safe to check."""
    stack: list[tuple[Any, str, int]] = [(obj, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, (dict, list)) and depth >= limit:
            return path or "(object)"
        if isinstance(value, dict):
            for key, item in value.items():
                stack.append((item, f"{path}.{key}" if path else str(key), depth + 1))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                stack.append((item, f"{path}[{index}]", depth + 1))
        elif value == PRUNED:
            return path or "(object)"
    return None


@dataclass(frozen=True)
class PoisonReport:
    """An object that arrived nested too deeply to decode, and where."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    path: str

    @property
    def message(self) -> str:
        path = self.path if len(self.path) <= 120 else self.path[:117] + "..."
        return (f"{self.kind or 'object'} {self.namespace}/{self.name} skipped: the value at "
                f"{path} is nested deeper than {MAX_DEPTH} levels (JSON nesting this deep "
                f"cannot be decoded safely); remove or flatten it")

    def involved_object(self) -> dict[str, Any]:
        """Enough of the object to post an Event about it."""
        return {"apiVersion": self.api_version, "kind": self.kind,
                "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid,
                             "resourceVersion": self.resource_version}}


def _key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    return (str(meta.get("uid") or ""), str(meta.get("namespace") or ""),
            str(meta.get("name") or ""), str(meta.get("resourceVersion") or ""))


class PoisonLedger:
    """The object versions that were pruned while decoding, most recent last (bounded)."""

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._reports: OrderedDict[tuple[str, str, str, str], PoisonReport] = OrderedDict()
        self._reported: set[tuple[str, str, str, str]] = set()

    def __len__(self) -> int:
        return len(self._reports)

    def record(self, obj: dict[str, Any], path: str, *, api_version: str = "",
               kind: str = "") -> PoisonReport:
        key = _key(obj)
        report = PoisonReport(str(obj.get("apiVersion") or api_version),
                              str(obj.get("kind") or kind), key[1], key[2], key[0], key[3],
                              path)
        if key not in self._reports:
            counters.POISON_OBJECTS_SKIPPED.inc()
        self._reports[key] = report
        self._reports.move_to_end(key)
        while len(self._reports) > self._limit:
            old, _ = self._reports.popitem(last=False)
            self._reported.discard(old)
        return report

    def record_document(self, document: Any) -> None:
        """Record every pruned object of a decoded watch event, LIST page or object."""
        for obj, api_version, kind in _objects_in(document):
            path = pruned_path(obj)
            if path is not None:
                self.record(obj, path, api_version=api_version, kind=kind)

    def lookup(self, obj: dict[str, Any]) -> PoisonReport | None:
        """The report for this exact object version, if it was pruned."""
        if not self._reports:
            return None
        return self._reports.get(_key(obj))

    def first_sighting(self, report: PoisonReport) -> bool:
        """True once per object version: when to post its Warning event."""
        key = (report.uid, report.namespace, report.name, report.resource_version)
        if key in self._reported:
            return False
        self._reported.add(key)
        return True


def _objects_in(document: Any) -> Iterator[tuple[dict[str, Any], str, str]]:
    if not isinstance(document, dict):
        return
    if isinstance(document.get("items"), list):  # a LIST page
        kind = str(document.get("kind") or "").removesuffix("List")
        api_version = str(document.get("apiVersion") or "")
        for item in document["items"]:
            if isinstance(item, dict):
                yield item, api_version, kind
    elif isinstance(document.get("object"), dict):  # a watch event
        yield document["object"], "", ""
    elif isinstance(document.get("metadata"), dict):  # one object
        yield document, "", ""


# The process-wide ledger: kopf's API client is process-wide, and so is what it decoded.
POISONED = PoisonLedger()


def loads(data: str | bytes | bytearray) -> Any:
    """``json.loads``, except that nesting beyond the recursion limit is pruned and recorded.

    Raises what ``json.loads`` raises for text that is not JSON; never ``RecursionError``.
    """
    try:
        return json.loads(data)
    except RecursionError:
        pass
    text = data if isinstance(data, str) else bytes(data).decode("utf-8")
    document = json.loads(prune(text))
    POISONED.record_document(document)
    return document
