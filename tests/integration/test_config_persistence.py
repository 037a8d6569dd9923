"""The config across restarts and bad edits: the last good config survives, nothing is rewritten.

Before the fix, "keep the last good config" lived only in memory: a restart while
``inferenceservice-config`` was broken or deleted fell back to the built-in defaults and
re-applied every Knative Service against them. A deeply nested value crashed the start-up
(and its retry skipped the ConfigMap), an impossible storage-initializer config was accepted,
and deleting the ConfigMap raised no Warning event.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml

from kfserving_operator.api.config import CONFIGMAP_NAME, LAST_GOOD_CONFIGMAP_NAME
from tests.integration.test_config_reload import (  # noqa: F401  (fixture)
    CONFIG_NAMESPACE,
    _apply_config,
    _image,
    config_map,
)
from tests.support.cluster import Cluster, wait_for
from tests.support.isvc import sklearn_isvc
from tests.support.knative import KnativeStandIn
from tests.support.operator import OperatorProcess

CUSTOM_IMAGE = "registry.example.com/sklearnserver"
CHILD_RESOURCES = frozenset({"services", "virtualservices", "configmaps"})


def warning_messages(cluster: Cluster, reason: str) -> list[str]:
    events = cluster.get_json("events", "-n", CONFIG_NAMESPACE, "--field-selector",
                              f"involvedObject.name={CONFIGMAP_NAME},reason={reason}")
    # Oldest first: the list comes in name order (random suffixes); etcd's resourceVersion
    # grows with every write, so the last one is the latest posted or repeated.
    items = sorted(events["items"], key=lambda event: int(event["metadata"]["resourceVersion"]))
    return [event["message"] for event in items]


def child_writes(operator: OperatorProcess, offset: int, namespace: str,
                 skip: str) -> list[tuple[str, str]]:
    """The operator's writes to children in ``namespace``, except those of ``skip``'s."""
    return [(w["verb"], w["requestURI"]) for w in operator.writes_since(offset, namespace)
            if w["objectRef"].get("resource") in CHILD_RESOURCES
            and not w["objectRef"].get("name", "").startswith(skip)]


def with_custom_image(config: dict[str, str]) -> dict[str, str]:
    predictors = json.loads(config["predictors"])
    predictors["sklearn"]["v1"]["image"] = CUSTOM_IMAGE
    return {"predictors": json.dumps(predictors)}


@pytest.fixture
def audited(operator: OperatorProcess | None) -> OperatorProcess:
    if operator is None or operator.audit_log is None:
        pytest.skip("needs this session's operator and the local control plane's audit log")
    return operator


@pytest.mark.parametrize("breakage", ["broken", "deleted"])
def test_restart_with_a_broken_or_deleted_config_writes_nothing_to_children(
        cluster: Cluster, namespace: str, config_map: dict[str, str],  # noqa: F811
        audited: OperatorProcess, breakage: str) -> None:
    """Chaos: a broken config across a restart."""
    _apply_config(cluster, with_custom_image(config_map))
    cluster.apply_yaml(sklearn_isvc("iris"), namespace)
    knative = KnativeStandIn(cluster, namespace)
    knative.wait_for_ksvc("iris-predictor-default")
    wait_for(lambda: _image(knative, "iris").startswith(CUSTOM_IMAGE),
             message="the custom image in force")
    last_good = wait_for(lambda: json.loads(cluster.kubectl(
        "get", "configmap", LAST_GOOD_CONFIGMAP_NAME, "-n", CONFIG_NAMESPACE, "-o", "json",
        check=False) or "null"), message="the persisted last good config")
    assert CUSTOM_IMAGE in last_good["data"]["predictors"]
    time.sleep(1)

    audited.stop()
    if breakage == "broken":
        _apply_config(cluster, {"predictors": "{this is not json"})
    else:
        cluster.kubectl("delete", "configmap", CONFIGMAP_NAME, "-n", CONFIG_NAMESPACE)
    offset, since = audited.audit_offset(), audited.log_offset()
    audited.start()
    # A change made after the restart is built with the last good config, not the defaults.
    cluster.apply_yaml(sklearn_isvc("probe"), namespace)
    knative.wait_for_ksvc("probe-predictor-default")
    assert _image(knative, "probe").startswith(CUSTOM_IMAGE)
    audited.wait_reconciled(f"{namespace}/iris", since=since)  # its resync, proven
    writes = child_writes(audited, offset, namespace, skip="probe")
    assert writes == [], yaml.safe_dump(writes)
    assert _image(knative, "iris").startswith(CUSTOM_IMAGE)
    reason = "InvalidConfig" if breakage == "broken" else "ConfigMapMissing"
    fragment = "" if breakage == "broken" else "using the last good config"
    # Events come back in no particular order, and a start before the test may have posted
    # one of the same reason: look for this restart's.
    wait_for(lambda: any(fragment in m for m in warning_messages(cluster, reason)),
             message=f"{reason} event")


def test_deleting_the_config_raises_a_warning_event(
        cluster: Cluster, config_map: dict[str, str],  # noqa: F811
        operator: OperatorProcess) -> None:
    cluster.kubectl("delete", "configmap", CONFIGMAP_NAME, "-n", CONFIG_NAMESPACE)
    wait_for(lambda: any("keeping the last good config" in m
                         for m in warning_messages(cluster, "ConfigMapDeleted")),
             message="ConfigMapDeleted event")
    assert operator.process.poll() is None


def test_deep_and_impossible_values_are_invalid_config_even_at_start(
        cluster: Cluster, namespace: str, config_map: dict[str, str],  # noqa: F811
        operator: OperatorProcess) -> None:
    deep = '{"a":' * 1500 + "1" + "}" * 1500
    impossible = json.dumps({"cpuRequest": "2", "cpuLimit": "1"})
    _apply_config(cluster, {"logger": deep, "storageInitializer": impossible})

    def mentions(*parts: str) -> Any:
        text = " ".join(warning_messages(cluster, "InvalidConfig"))
        return all(part in text for part in parts)

    wait_for(lambda: mentions("'logger'", "nested deeper", "'storageInitializer'",
                              "cpuRequest (2)"), message="InvalidConfig event for both keys")
    # At start too: the retry of a failed parse must not skip the ConfigMap.
    cluster.kubectl("delete", "events", "-n", CONFIG_NAMESPACE, "--field-selector",
                    "reason=InvalidConfig")
    log_before = len(operator.log())
    operator.restart()
    wait_for(lambda: mentions("'logger'", "nested deeper", "cpuRequest (2)"),
             message="InvalidConfig event after a restart")
    assert operator.process.poll() is None
    assert "Traceback" not in operator.log()[log_before:]
    # The default (valid) storage initializer stays in force for new pods' containers.
    cluster.apply_yaml(sklearn_isvc("iris"), namespace)
    KnativeStandIn(cluster, namespace).wait_for_ksvc("iris-predictor-default")

