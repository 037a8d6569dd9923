"""The config loop: the config in force at start, each change of the user's ConfigMap, its
problems reported as a Warning event, and the last good config persisted for restarts.

Only the leader writes (the events, the last good config); a follower keeps what it would
report until it leads.
"""

from __future__ import annotations

import logging
from typing import Any

from kfserving_operator.api.config import CONFIGMAP_NAME, LAST_GOOD_CONFIGMAP_NAME
from kfserving_operator.k8s.api import KubeError
from kfserving_operator.operator.runtime import Runtime
from kfserving_operator.webhooks.lifecycle import installation_owner

logger = logging.getLogger("kfserving_operator")


async def load_config(runtime: Runtime) -> None:
    """The config in force at start: the persisted last good one, updated from the user's."""
    assert runtime.api is not None
    namespace = runtime.options.namespace
    try:
        runtime.config.restore(await runtime.api.get("v1", "ConfigMap",
                                                     LAST_GOOD_CONFIGMAP_NAME, namespace))
    except KubeError as exc:
        logger.error("cannot read %s/%s: %s", namespace, LAST_GOOD_CONFIGMAP_NAME, exc)
    fallback = "the last good config" if runtime.config.persisted else "the built-in defaults"
    try:
        configmap = await runtime.api.get("v1", "ConfigMap", CONFIGMAP_NAME, namespace)
    except KubeError as exc:
        logger.error("cannot read %s/%s: %s; using %s", namespace, CONFIGMAP_NAME, exc,
                     fallback)
        return
    if configmap is None:
        message = f"{namespace}/{CONFIGMAP_NAME} not found; using {fallback}"
        logger.warning("%s", message)
        runtime.config_warning = (_configmap_reference(namespace), message, "ConfigMapMissing")
        if runtime.leading:
            await post_config_warning(runtime)
    else:
        await take_config(runtime, configmap)
    if runtime.leading:
        await persist_config(runtime)


def _configmap_reference(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP_NAME, "namespace": namespace}}


async def take_config(runtime: Runtime, configmap: dict[str, Any]) -> None:
    changed, problems = runtime.config.update(configmap)
    runtime.config_warning = None
    if problems:
        # Followers write nothing: the warning waits for whoever leads next.
        runtime.config_warning = (configmap, "; ".join(str(p) for p in problems),
                                  "InvalidConfig")
        if runtime.leading:
            await post_config_warning(runtime)
    if changed:
        logger.info("operator config changed; reconciling every InferenceService")
        if runtime.leading:
            await persist_config(runtime)
        runtime.enqueue_all()


async def post_config_warning(runtime: Runtime) -> None:
    """Report the problems of the ConfigMap in force as a Warning event on it (once)."""
    warning, runtime.config_warning = runtime.config_warning, None
    if warning is not None and runtime.api is not None:
        configmap, message, reason = warning
        await runtime.api.post_event(configmap, "Warning", reason, message)


async def persist_config(runtime: Runtime) -> None:
    """Write the config in force to the last-good ConfigMap when it holds something else
    (the leader does this: at start, on a change, and when it takes over)."""
    wanted = runtime.config.to_persist(runtime.options.namespace)
    if wanted is None or runtime.api is None:
        return
    config = runtime.config.current
    owner = await installation_owner(runtime.api, runtime.options.namespace)
    if owner is not None:
        wanted["metadata"]["ownerReferences"] = [owner]
    try:
        await runtime.api.apply(wanted)
    except KubeError as exc:
        logger.error("could not persist the config in force to %s/%s: %s; a restart while "
                     "%s is broken would fall back to %s", runtime.options.namespace,
                     LAST_GOOD_CONFIGMAP_NAME, exc, CONFIGMAP_NAME,
                     "the previous last good config" if runtime.config.persisted
                     else "the built-in defaults")
        return
    runtime.config.persisted_as(config)

