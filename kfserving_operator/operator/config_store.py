"""The live operator config: the last good ``inferenceservice-config``, updated from its watch.

"Last good" survives restarts: the config in force is persisted in an operator-owned
ConfigMap (``inferenceservice-config-last-good``) whenever it changes, and restored from
there at start, before the user's ConfigMap is read. So a restart while the user's ConfigMap
is broken or deleted goes on with the config the children were built from, and writes
nothing to them, instead of falling back to the built-in defaults and rewriting the fleet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from kfserving_operator.api.config import (
    LAST_GOOD_CONFIGMAP_NAME,
    ConfigProblem,
    OperatorConfig,
    last_good_configmap,
    parse_operator_config,
)

logger = logging.getLogger(__name__)


@dataclass
class ConfigStore:
    """Holds the config in force; a bad update keeps the last good values of the bad keys."""

    current: OperatorConfig = field(default_factory=OperatorConfig)
    resource_version: str | None = None
    # What the operator-owned last-good ConfigMap holds (None: nothing persisted yet).
    persisted: OperatorConfig | None = None

    def get(self) -> OperatorConfig:
        return self.current

    def restore(self, last_good: dict[str, Any] | None) -> None:
        """Start from the persisted last good config (when there is one) instead of defaults."""
        if not last_good:
            return
        result = parse_operator_config(last_good.get("data") or {})
        for problem in result.problems:
            # Written by us from a parsed config, so this only happens across an upgrade
            # that added keys: those keep their defaults.
            logger.warning("%s (in %s)", problem, LAST_GOOD_CONFIGMAP_NAME)
        self.current = result.config
        self.persisted = result.config

    def update(self, configmap: dict[str, Any] | None) -> tuple[bool, tuple[ConfigProblem, ...]]:
        """Take a new ConfigMap (``None`` = deleted); return (changed, problems)."""
        if configmap is None:
            self.resource_version = None
            problem = ConfigProblem("(all)", "the ConfigMap is missing; keeping the last good "
                                             "config")
            return False, (problem,)
        version = configmap.get("metadata", {}).get("resourceVersion")
        if version is not None and version == self.resource_version:
            return False, ()
        result = parse_operator_config(configmap.get("data") or {}, previous=self.current)
        # Only now: had parsing failed, the same version must be read again, not skipped.
        self.resource_version = version
        changed = result.config != self.current
        self.current = result.config
        for problem in result.problems:
            logger.error("%s", problem)
        return changed, result.problems

    def to_persist(self, namespace: str) -> dict[str, Any] | None:
        """The last-good ConfigMap to write, or None when it already holds the config."""
        if self.persisted == self.current:
            return None
        return last_good_configmap(self.current, namespace)

    def persisted_as(self, config: OperatorConfig) -> None:
        self.persisted = config
