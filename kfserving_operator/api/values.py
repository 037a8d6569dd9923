"""Checks of single values, usable on their own: storage URIs, container images, quantities,
resource names, URLs. Each says why a value is refused, or returns None.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final
from urllib.parse import urlparse

from kfserving_operator.api.constants import AZURE_BLOB_HOST_SUFFIX
from kfserving_operator.api.quantity import QuantityError, parse_quantity

STORAGE_URI_PREFIXES: Final = (
    "gs://",
    "s3://",
    "pvc://",
    "file://",
    "http://",
    "https://",
    "hdfs://",
    "webhdfs://",
)


AZURE_BLOB_RE: Final = re.compile(r"^https://[a-z0-9]+\.blob\.core\.windows\.net/[^/]+(/.*)?$")
SCHEME_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Container image references as registries parse them: [host[:port]/]path[:tag][@digest].
IMAGE_RE: Final = re.compile(
    r"^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)


TAG_RE: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DNS_LABEL_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Resource names Kubernetes knows without a domain; anything else must be domain/name.
STANDARD_RESOURCES: Final = frozenset({"cpu", "memory", "ephemeral-storage"})
QUALIFIED_RESOURCE_RE: Final = re.compile(
    r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def image_reference_error(image: str) -> str | None:
    """Why ``image`` is not a container image reference, or None."""
    if len(image) > 255 or not IMAGE_RE.match(image):
        return ("must be a container image reference such as registry.example.com/team/"
                f"model-server:1.0 (lower-case repository, optional tag and digest); got {image!r}")
    return None


def storage_uri_error(uri: str) -> str | None:
    """Why ``uri`` is not an accepted storage URI, or None when it is fine."""
    if not SCHEME_RE.match(uri):
        return None  # a local path
    allowed = (
        "must be a local path or a URI starting with one of "
        + ", ".join(STORAGE_URI_PREFIXES)
        + f" (Azure: https://<account>{AZURE_BLOB_HOST_SUFFIX}/<container>/<path>)"
    )
    host = urlparse(uri).hostname or ""
    if host.endswith(AZURE_BLOB_HOST_SUFFIX):
        if not AZURE_BLOB_RE.match(uri):
            return (
                f"an Azure blob URI must look like https://<account>{AZURE_BLOB_HOST_SUFFIX}"
                f"/<container>/<path>; got {uri!r}"
            )
        return None
    prefix = next((p for p in STORAGE_URI_PREFIXES if uri.startswith(p)), None)
    if prefix is None:
        return f"{allowed}; got {uri!r}"
    if not uri[len(prefix) :].strip("/"):
        return f"must name a location after {prefix!r}; got {uri!r}"
    return None


def quantity_error(value: object) -> str | None:
    """Why ``value`` is not a Kubernetes quantity, or None."""
    if not isinstance(value, str):
        return f"must be a Kubernetes quantity (examples: 100m, 1, 2Gi); got {value!r}"
    try:
        parse_quantity(value)
    except QuantityError:
        return f"must be a Kubernetes quantity (examples: 100m, 1, 2Gi, 512Mi); got {value!r}"
    return None


def quantity_value(value: object) -> Decimal | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def is_http_url(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") and bool(parsed.hostname)


def overcommit_forbidden(resource: str) -> bool:
    """Extended resources and huge pages: Kubernetes wants requests equal to limits."""
    return resource.startswith("hugepages-") or (
        "/" in resource and not resource.startswith("kubernetes.io/"))


def path_extension(uri: str) -> str:
    """Extension of the last path element of a storage URI ('' when none)."""
    path = urlparse(uri).path if SCHEME_RE.match(uri) else uri
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if "." not in last.lstrip("."):
        return ""
    return "." + last.rsplit(".", 1)[-1]
