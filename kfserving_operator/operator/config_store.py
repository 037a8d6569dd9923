"""The live operator config: the last good ``inferenceservice-config``, updated from its watch."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from kfserving_operator.api.config import (
    ConfigProblem,
    OperatorConfig,
    parse_operator_config,
)

logger = logging.getLogger(__name__)


@dataclass
class ConfigStore:
    """Holds the config in force; a bad update keeps the last good values of the bad keys."""

    current: OperatorConfig = field(default_factory=OperatorConfig)
    resource_version: str | None = None

    def get(self) -> OperatorConfig:
        return self.current

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
        self.resource_version = version
        result = parse_operator_config(configmap.get("data") or {}, previous=self.current)
        changed = result.config != self.current
        self.current = result.config
        for problem in result.problems:
            logger.error("%s", problem)
        return changed, result.problems
