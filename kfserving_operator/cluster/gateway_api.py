"""The Gateway API CRDs, read at run time from the ``sigs.k8s.io/gateway-api`` Go module.

The version is the one ``hack/gatewayapi/go.mod`` pins; the CRDs are the module's own standard
channel (``config/crd/standard``), with their CEL validation, never a copy. Reading them needs
the Go toolchain (a module cache miss downloads from the module proxy), as the Knative lane's
CRDs do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kfserving_operator.cluster.lane import _documents, _module_dir, _required_version

MODULE = "sigs.k8s.io/gateway-api"


def gateway_api_module(root: Path) -> Path:
    """The pinned module's directory in the Go module cache."""
    go_mod = root / "hack" / "gatewayapi" / "go.mod"
    return _module_dir(go_mod.parent, MODULE, _required_version(go_mod, MODULE))


def gateway_api_crds(root: Path) -> list[dict[str, Any]]:
    """Every CRD of the standard channel (GatewayClass, Gateway, HTTPRoute, ...)."""
    paths = sorted((gateway_api_module(root) / "config" / "crd" / "standard").glob("*.yaml"))
    return [doc for doc in _documents(*paths) if doc.get("kind") == "CustomResourceDefinition"]
