"""The config store: last good config restored at start, versions remembered after parsing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kfserving_operator.api.config import LAST_GOOD_CONFIGMAP_NAME, OperatorConfig
from kfserving_operator.operator import config_store
from kfserving_operator.operator.config_store import ConfigStore


def _configmap(version: str, **overrides: Any) -> dict[str, Any]:
    data = OperatorConfig().to_configmap_data()
    data.update({key: json.dumps(value) for key, value in overrides.items()})
    return {"metadata": {"name": "inferenceservice-config", "resourceVersion": version},
            "data": data}


def test_last_good_config_is_restored_and_persisted_only_when_it_changes() -> None:
    custom = {"image": "registry.example.com/init:1"}
    store = ConfigStore()
    store.update(_configmap("1", storageInitializer=custom))
    wanted = store.to_persist("ns")
    assert wanted is not None and wanted["metadata"]["name"] == LAST_GOOD_CONFIGMAP_NAME
    store.persisted_as(store.current)
    assert store.to_persist("ns") is None

    restarted = ConfigStore()
    restarted.restore(wanted)
    assert restarted.current.storage_initializer.image == custom["image"]
    assert restarted.to_persist("ns") is None
    # A broken ConfigMap at start keeps the restored values, not the defaults.
    changed, problems = restarted.update(
        {"metadata": {"resourceVersion": "2"}, "data": {"storageInitializer": "{broken"}})
    assert problems and not changed
    assert restarted.current.storage_initializer.image == custom["image"]


def test_version_is_remembered_only_after_a_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    store = ConfigStore()
    real = config_store.parse_operator_config
    calls = []

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("interrupted")
        return real(*args, **kwargs)

    monkeypatch.setattr(config_store, "parse_operator_config", failing_once)
    configmap = _configmap("5", storageInitializer={"image": "x/y:1"})
    with pytest.raises(RuntimeError):
        store.update(configmap)
    changed, _ = store.update(configmap)
    assert changed and store.current.storage_initializer.image == "x/y:1"
