"""The multi-model config: the ``models.json`` key of ``modelconfig-<isvc>-<shard>``.

The agent sidecar of a multi-model predictor watches this file and pulls, loads and unloads
models to match it. Its format is KFServing's: a JSON array of

    {"modelName": "<TrainedModel name>",
     "modelSpec": {"storageUri": "...", "framework": "...", "memory": "..."}}

The operator writes the whole array from the TrainedModels of the InferenceService, sorted by
model name, so the same models always give the same bytes (KFServing's order followed Go's
map iteration and changed on every write). Pure functions only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

MODELS_KEY: Final = "models.json"
# The apiserver refuses a ConfigMap whose data exceeds 1 MiB.
CONFIGMAP_MAX_BYTES: Final = 1024 * 1024


@dataclass(frozen=True)
class ModelEntry:
    """One model of the config."""

    name: str
    storage_uri: str
    framework: str
    memory: str

    def to_json(self) -> dict[str, Any]:
        return {
            "modelName": self.name,
            "modelSpec": {
                "storageUri": self.storage_uri,
                "framework": self.framework,
                "memory": self.memory,
            },
        }


def render_models(entries: Iterable[ModelEntry]) -> str:
    """The ``models.json`` text of these models: compact, sorted by name."""
    ordered = sorted(entries, key=lambda entry: entry.name)
    return json.dumps([entry.to_json() for entry in ordered], separators=(",", ":"))


def entry_size(entry: ModelEntry) -> int:
    """Bytes one entry adds to ``models.json`` (with its separating comma)."""
    return len(json.dumps(entry.to_json(), separators=(",", ":")).encode()) + 1


def empty_size() -> int:
    """Bytes of the ConfigMap data with no model: the key and ``[]``."""
    return len(MODELS_KEY) + 2


class ModelConfigError(ValueError):
    """A ``models.json`` that is not a list of models."""


def parse_models(text: str | None) -> list[dict[str, Any]]:
    """The entries of a ``models.json`` text (an empty or missing file has none)."""
    if not text or not text.strip():
        return []
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ModelConfigError(f"{MODELS_KEY} is not JSON: {exc}") from exc
    if not isinstance(data, list) or not all(isinstance(item, Mapping) for item in data):
        raise ModelConfigError(f"{MODELS_KEY} must be a JSON array of objects")
    return [dict(item) for item in data]


def model_names(text: str | None) -> set[str]:
    """The model names listed in a ``models.json`` text (unreadable: none)."""
    try:
        entries = parse_models(text)
    except ModelConfigError:
        return set()
    return {str(item.get("modelName")) for item in entries if item.get("modelName")}
