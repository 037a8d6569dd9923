"""Classify and check the model's storage URI before the storage initializer gets it.

Allowed: ``gs://``, ``s3://``, ``pvc://``, ``file://``, ``http://``, ``https://`` (Azure Blob
URLs ``https://<account>.blob.core.windows.net/...`` included), ``hdfs://``, ``webhdfs://``,
and a local path without a scheme. Anything else would only fail later inside the init
container, so it is refused at admission with a message that says what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from kfserving_operator.api.constants import AZURE_BLOB_HOST_SUFFIX
from kfserving_operator.podmutation.errors import PodMutationError
from kfserving_operator.podmutation.names import PVC_MOUNT_PATH

SCHEMES: Final = ("gs", "s3", "pvc", "file", "http", "https", "hdfs", "webhdfs")
ALLOWED_DESCRIPTION: Final = (
    "gs://, s3://, pvc://<claim>/<path>, file://, http://, https:// (including Azure Blob "
    "https://<account>.blob.core.windows.net/...), hdfs://, webhdfs://, or a local path "
    "without a scheme"
)

_SCHEME_ONLY = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(?!//)")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class StorageSource:
    """A checked storage URI.

    ``kind`` is the scheme (``gs``, ``s3``, ``pvc``, ``file``, ``http``, ``https``, ``hdfs``,
    ``webhdfs``), ``azure-blob`` for Azure Blob URLs, or ``local``. ``download_uri`` is what
    the storage initializer is given: the URI itself, except for ``pvc://`` which becomes a
    path under the mounted claim.
    """

    uri: str
    kind: str
    download_uri: str
    pvc_claim: str | None = None


def parse_storage_uri(uri: str, *, source: str) -> StorageSource:
    """Check ``uri``; ``source`` names where it came from, for the error message."""

    def fail(problem: str) -> PodMutationError:
        return PodMutationError(f"{source}: {problem}. Allowed storage URIs: {ALLOWED_DESCRIPTION}")

    if uri == "":
        raise fail("the storage URI is empty")
    if uri != uri.strip():
        raise fail(f"storage URI {uri!r} has leading or trailing whitespace")
    if "://" not in uri:
        typo = _SCHEME_ONLY.match(uri)
        if typo and typo.group(1).lower() in SCHEMES:
            scheme = typo.group(1).lower()
            raise fail(f"storage URI {uri!r} is malformed; expected {scheme}://...")
        return StorageSource(uri=uri, kind="local", download_uri=uri)

    scheme, rest = uri.split("://", 1)
    if scheme not in SCHEMES:
        if scheme.lower() in SCHEMES:
            raise fail(f"storage URI {uri!r} must use the lower-case scheme {scheme.lower()}://")
        raise fail(f"storage URI {uri!r} has the unsupported scheme {scheme + '://'!r}")
    first, _, path = rest.partition("/")
    if scheme == "pvc":
        return _parse_pvc(uri, first, path, fail)
    if scheme == "file":
        if not rest:
            raise fail(f"storage URI {uri!r} has no path")
        return StorageSource(uri=uri, kind="file", download_uri=uri)
    if not first:
        what = "bucket name" if scheme in {"gs", "s3"} else "host"
        raise fail(f"storage URI {uri!r} has no {what}")
    kind = scheme
    if scheme == "https" and first.lower().endswith(AZURE_BLOB_HOST_SUFFIX):
        kind = "azure-blob"
    return StorageSource(uri=uri, kind=kind, download_uri=uri)


def _parse_pvc(
    uri: str, claim: str, path: str, fail: Callable[[str], PodMutationError]
) -> StorageSource:
    if not claim:
        raise fail(f"storage URI {uri!r} has no claim name; expected pvc://<claim-name>/<path>")
    if len(claim) > 253 or not _DNS_SUBDOMAIN.match(claim):
        raise fail(
            f"storage URI {uri!r} names the claim {claim!r}, which is not a valid "
            "PersistentVolumeClaim name (lower-case letters, digits, '-' and '.')"
        )
    if ".." in path.split("/"):
        raise fail(f"storage URI {uri!r} must not contain '..' path segments")
    return StorageSource(
        uri=uri, kind="pvc", download_uri=f"{PVC_MOUNT_PATH}/{path}", pvc_claim=claim
    )
