"""Counting the operator's requests to the Kubernetes API, on both of its HTTP clients.

Our own reads and writes go through lightkube (httpx); kopf's lists and watches go through
aiohttp. Both report every finished request as (verb, code) to one observer, with the verb
named as the apiserver names it (get, list, watch, create, update, patch, delete), and every
watch re-opened for a resource it already watched as a watch restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import aiohttp
import httpx2

_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


class RequestObserver(Protocol):
    def observe_api_request(self, verb: str, code: str) -> None: ...

    def observe_watch_restart(self, resource: str) -> None: ...


def _resource_parts(path: str) -> tuple[str, bool] | None:
    """(resource, names one object) for an API resource path; None for anything else."""
    parts = [part for part in path.split("/") if part]
    if len(parts) >= 2 and parts[0] == "api":
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return None
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]  # a namespaced resource; /namespaces/NAME alone is a namespace
    if not rest:
        return None
    resource = f"{rest[0]}.{group}" if group else rest[0]
    return resource, len(rest) >= 2


def request_verb(method: str, path: str, query: Mapping[str, list[str]]) -> str:
    """The apiserver's verb for an HTTP request (``get`` for discovery and other paths)."""
    method = method.upper()
    target = _resource_parts(path)
    names_one = target[1] if target else True
    if method == "GET":
        if query.get("watch", [""])[0] in {"true", "1"}:
            return "watch"
        return "get" if names_one else "list"
    if method == "DELETE":
        return "delete" if names_one else "deletecollection"
    return _METHOD_VERBS.get(method, method.lower())


def watched_resource(path: str) -> str:
    target = _resource_parts(path)
    return target[0] if target else path


class _WatchTracker:
    """Tells a watch restart from the first watch of a resource."""

    def __init__(self) -> None:
        self._watched: set[str] = set()

    def is_restart(self, path: str) -> bool:
        if path in self._watched:
            return True
        self._watched.add(path)
        return False


def _record(observer: RequestObserver, tracker: _WatchTracker, method: str, url: str,
            code: str) -> None:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    verb = request_verb(method, parts.path, query)
    observer.observe_api_request(verb, code)
    if verb == "watch" and tracker.is_restart(parts.path):
        observer.observe_watch_restart(watched_resource(parts.path))


def instrument_httpx(client: httpx2.AsyncClient, observer: RequestObserver) -> None:
    """Count every response of an httpx client (lightkube's)."""
    tracker = _WatchTracker()

    async def on_response(response: httpx2.Response) -> None:
        request = response.request
        _record(observer, tracker, request.method, str(request.url),
                str(response.status_code))

    hooks: dict[str, list[Any]] = dict(client.event_hooks)
    hooks["response"] = [*hooks.get("response", []), on_response]
    client.event_hooks = hooks


def aiohttp_trace(observer: RequestObserver) -> aiohttp.TraceConfig:
    """A trace config counting every request of an aiohttp session (kopf's)."""
    tracker = _WatchTracker()
    trace = aiohttp.TraceConfig()

    async def on_end(_: aiohttp.ClientSession, __: Any,
                     params: aiohttp.TraceRequestEndParams) -> None:
        _record(observer, tracker, params.method, str(params.url),
                str(params.response.status))

    async def on_exception(_: aiohttp.ClientSession, __: Any,
                           params: aiohttp.TraceRequestExceptionParams) -> None:
        _record(observer, tracker, params.method, str(params.url), "error")

    trace.on_request_end.append(on_end)
    trace.on_request_exception.append(on_exception)
    return trace
