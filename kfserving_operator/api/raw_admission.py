"""The update rule of the deployment mode, as field errors for the validating webhook."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.api.constants import DEPLOYMENT_MODE_ANNOTATION
from kfserving_operator.api.deployment_mode import mode_change_error
from kfserving_operator.api.field_errors import FieldError, format_path


def mode_change_errors(obj: Mapping[str, Any], old: Mapping[str, Any] | None,
                       config: OperatorConfig) -> list[FieldError]:
    """A refusal naming the annotation when an update would change the deployment mode."""
    problem = mode_change_error(obj, old, config.deploy.default_deployment_mode)
    if problem is None:
        return []
    path = format_path(("metadata", "annotations", DEPLOYMENT_MODE_ANNOTATION))
    return [FieldError(path, problem)]
