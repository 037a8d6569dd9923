"""Host names from ``ingress.domainTemplate``: the subset of Go templates KServe's users write.

A template is text with actions ``{{ .Name }}``, ``{{ .Namespace }}``, ``{{ .IngressDomain }}``
and ``{{ index .Annotations "key" }}`` / ``{{ index .Labels "key" }}``. Anything else is
refused when the config is read, so a typo shows up as a config problem, not as a host
nobody can reach. The rendered host must be a DNS name of labels of at most 63 characters;
that is checked only where a route is made (``host_error``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from kfserving_operator.api.constants import DNS_LABEL_MAX
from kfserving_operator.api.values import DNS_LABEL_RE

DEFAULT_DOMAIN_TEMPLATE: Final = "{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}"

_ACTION: Final = re.compile(r"\{\{(.*?)\}\}")
_FIELD: Final = re.compile(r"^\.(Name|Namespace|IngressDomain)$")
_INDEX: Final = re.compile(r'^index\s+\.(Annotations|Labels)\s+"([^"]*)"$')
HOST_MAX: Final = 253


@dataclass(frozen=True)
class HostValues:
    """What a template may read."""

    name: str
    namespace: str
    ingress_domain: str
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


def _action_value(action: str, values: HostValues) -> str:
    action = action.strip()
    found = _FIELD.match(action)
    if found:
        return {"Name": values.name, "Namespace": values.namespace,
                "IngressDomain": values.ingress_domain}[found.group(1)]
    indexed = _INDEX.match(action)
    if indexed:
        source = values.annotations if indexed.group(1) == "Annotations" else values.labels
        return source.get(indexed.group(2), "")
    raise ValueError(f"unsupported template action {{{{{action}}}}}")


def render_host(template: str, values: HostValues) -> str:
    """The host ``template`` gives for ``values`` (raises ValueError on an unknown action)."""
    return _ACTION.sub(lambda m: _action_value(m.group(1), values), template)


def domain_template_error(template: str) -> str | None:
    """Why ``template`` cannot be used, or None."""
    if "{{" in _ACTION.sub("", template) or "}}" in _ACTION.sub("", template):
        return f"unbalanced braces in {template!r}"
    try:
        render_host(template, HostValues("n", "ns", "example.com"))
    except ValueError as exc:
        return (f"{exc}; use .Name, .Namespace, .IngressDomain, index .Annotations \"key\" "
                f"or index .Labels \"key\"")
    return None


def host_error(host: str) -> str | None:
    """Why ``host`` is not a DNS name a route can carry, or None."""
    if not host or len(host) > HOST_MAX:
        return f"host {host!r} must be 1 to {HOST_MAX} characters"
    for label in host.split("."):
        if len(label) > DNS_LABEL_MAX:
            return (f"host {host!r}: label {label!r} is {len(label)} characters, more than "
                    f"{DNS_LABEL_MAX}")
        if not DNS_LABEL_RE.match(label):
            return (f"host {host!r}: label {label!r} must be lower case alphanumeric "
                    "characters or '-', starting and ending with an alphanumeric character")
    return None
