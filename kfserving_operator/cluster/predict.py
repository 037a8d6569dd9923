"""``cluster predict``: call an InferenceService the way a user would, on the local lane.

The request goes to the lane's ingress (Traefik, whose Knative provider serves Knative's
KIngresses and their traffic splits) with the ``Host`` header the InferenceService's URL
leads to. KFServing routes that top-level URL with the Istio VirtualService the operator
writes: its route for the URL's host rewrites ``Host`` to the component's Knative Service
(the transformer when there is one) and sends it to Knative's local gateway. No Istio runs
on the lane, so this command applies that route itself: it reads the operator's
VirtualService, takes the ``Host`` rewrite of the route whose authority match accepts the
URL's host, and sends the request to the ingress's cluster-local entry point, which plays
Knative's local gateway. Everything after that (revision choice by traffic percent, the
activator when scaled to zero, queue-proxy, the model server) is the real data path.

A raw-mode InferenceService has a plain Ingress instead, which the same ingress serves: the
request keeps the URL's host.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class PredictError(RuntimeError):
    """The request could not be addressed or sent."""


@dataclass(frozen=True)
class Route:
    """Where a request for one InferenceService goes."""

    url_host: str  # the host of status.url
    host: str  # the Host header the VirtualService sets


def request_path(model: str, *, v2: bool, path: str | None) -> str:
    """The inference path: ``--path`` as given, else the v1 or v2 protocol's predict path."""
    if path:
        return path if path.startswith("/") else f"/{path}"
    return f"/v2/models/{model}/infer" if v2 else f"/v1/models/{model}:predict"


def _authority_matches(match: dict[str, Any], host: str) -> bool:
    authority = match.get("authority") or {}
    if "exact" in authority:
        return bool(authority["exact"] == host)
    if "prefix" in authority:
        return host.startswith(authority["prefix"])
    if "regex" in authority:
        return re.fullmatch(authority["regex"], host) is not None
    return False


def route_for(isvc: dict[str, Any], virtual_service: dict[str, Any] | None) -> Route:
    """The ``Host`` the operator's VirtualService gives a request to the isvc's URL.

    The default route (no URI match) whose authority match accepts the URL's host decides;
    a path-matched route (the explainer's ``:explain``) is not a prediction's.
    """
    name = isvc.get("metadata", {}).get("name", "?")
    url = (isvc.get("status") or {}).get("url")
    if not url:
        raise PredictError(f"InferenceService {name} has no URL yet; its status says: "
                           f"{_ready_message(isvc)}")
    url_host = urlsplit(url).hostname or ""
    if (isvc.get("status") or {}).get("deploymentMode") == "RawDeployment":
        # Raw deployment mode: a plain Ingress routes the URL's host as it is.
        return Route(url_host=url_host, host=url_host)
    if virtual_service is None:
        raise PredictError(f"InferenceService {name} has no VirtualService (yet); "
                           "it routes the URL's host")
    for http in virtual_service.get("spec", {}).get("http", []):
        matches = http.get("match") or []
        if any("uri" in match for match in matches):
            continue
        if not any(_authority_matches(match, url_host) for match in matches):
            continue
        host = ((http.get("headers") or {}).get("request") or {}).get("set", {}).get("Host")
        if host:
            return Route(url_host=url_host, host=host)
    raise PredictError(f"the VirtualService of {name} has no route for {url_host}")


def resolve_route(kubectl: Path, kubeconfig: str, name: str, namespace: str) -> Route:
    """Read the InferenceService and its VirtualService (inside the lane's namespace) and
    return where a request to its URL goes."""
    def get(resource: str) -> dict[str, Any] | None:
        result = subprocess.run(
            [str(kubectl), "--kubeconfig", kubeconfig, "get", resource, name, "-n", namespace,
             "-o", "json"], capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise PredictError(result.stderr.strip())
        loaded: dict[str, Any] = json.loads(result.stdout)
        return loaded

    isvc = get("inferenceservices.serving.kubeflow.org")
    if isvc is None:
        raise PredictError(f"InferenceService {namespace}/{name} not found")
    return route_for(isvc, get("virtualservices.networking.istio.io"))


def _ready_message(isvc: dict[str, Any]) -> str:
    for condition in (isvc.get("status") or {}).get("conditions", []):
        if condition.get("type") == "Ready":
            return (f"Ready={condition.get('status')} {condition.get('reason', '')} "
                    f"{condition.get('message', '')}").strip()
    return "no Ready condition"


def send(address: str, route: Route, path: str, body: bytes,
         timeout: float = 120.0) -> tuple[int, bytes]:
    """POST ``body`` to ``address`` (host:port) with the route's ``Host``; (status, body)."""
    request = urllib.request.Request(
        f"http://{address}{path}", data=body, method="POST",
        headers={"Host": route.host, "Content-Type": "application/json"})
    # Never a proxy: the address is on the lane's bridge, inside its namespace.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, OSError) as exc:
        raise PredictError(f"cannot reach the ingress at {address}: {exc}") from exc


def printable(response: bytes) -> str:
    """The response body for a terminal: JSON on one line with the usual spacing
    (``{"predictions": [1, 1]}``, whatever the server's own spacing), anything else as it is."""
    text = response.decode(errors="replace")
    try:
        return json.dumps(json.loads(text))
    except ValueError:
        return text.rstrip("\n")


def load_body(path: str) -> bytes:
    """The request file's bytes, checked to be JSON (a typo fails here, not in the server)."""
    with open(path, "rb") as handle:
        body = handle.read()
    try:
        json.loads(body)
    except ValueError as exc:
        raise PredictError(f"{path} is not JSON: {exc}") from exc
    return body
