"""The names an InferenceService's name turns into (Knative Services, revisions, tag host
labels), and the longest InferenceService name whose generated names all fit in a DNS label.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from kfserving_operator.api.constants import (
    DNS_LABEL_MAX,
    ENABLE_TAG_ROUTING_ANNOTATION,
    EXPLAINER,
    LATEST_TAG,
    PREV_TAG,
    REVISION_SUFFIX_LENGTH,
    knative_service_name,
)

NAME_PATTERN: Final = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_RE: Final = re.compile(NAME_PATTERN)
# Characters Kubernetes appends to generateName.
GENERATED_NAME_SUFFIX_LENGTH: Final = 5


def describe_components(components: Sequence[str], tag_routing: bool) -> str:
    parts = [("an " if c == EXPLAINER else "a ") + c for c in components]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    if tag_routing:
        text += f' and tag routing ({ENABLE_TAG_ROUTING_ANNOTATION}: "true")'
    return text


def generated_names(
    name: str, components: Sequence[str], tag_routing: bool
) -> list[tuple[str, str]]:
    """Every child name and host label derived from the isvc name, with what it names."""
    names: list[tuple[str, str]] = []
    for component in components:
        ksvc = knative_service_name(name, component)
        names.append((ksvc, f"the {component} Knative Service"))
        names.append((f"{ksvc}-{'0' * (REVISION_SUFFIX_LENGTH - 2)}1", f"a {component} revision"))
        names.append((f"{PREV_TAG}-{ksvc}", f"the {component} '{PREV_TAG}' tag host label"))
        if tag_routing:
            names.append((f"{LATEST_TAG}-{ksvc}", f"the {component} '{LATEST_TAG}' tag host label"))
    return names


def max_name_length(components: Sequence[str], tag_routing: bool) -> int:
    """The longest isvc name whose generated names all fit in a DNS label."""
    overhead = max(len(n) for n, _ in generated_names("", components, tag_routing))
    return DNS_LABEL_MAX - overhead
