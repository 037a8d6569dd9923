"""All of the operator's own API I/O, in one place.

Reads and writes go through lightkube's ``AsyncClient`` (async, light on memory, server-side
apply for generic resources). Every write uses server-side apply with one field manager,
``kfserving-operator``, so defaults that Knative or Kubernetes fill in are never fought over
and a field we stop setting is removed by the server. The informers' LISTs and watches are
here too (``list_pages``, ``watch_objects``); kopf watches the ConfigMap, the CRDs and
TrainedModels.

How many writes the operator makes is measured on the server side, from the apiserver's
audit log (the zero-writes tests and the benchmarks), not counted here.
"""

from __future__ import annotations

import builtins
import datetime
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2
import msgspec
from lightkube import AsyncClient
from lightkube.config.client_adapter import verify_cluster
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ApiError, ConfigError
from lightkube.generic_resource import (
    create_global_resource,
    create_namespaced_resource,
)
from lightkube.types import CascadeType, PatchType

from kfserving_operator import counters
from kfserving_operator.api import constants as c
from kfserving_operator.api.constants import OPERATOR_NAME as FIELD_MANAGER
from kfserving_operator.k8s import decoding
from kfserving_operator.k8s.instrumentation import RequestObserver, instrument_httpx
from kfserving_operator.k8s.transport import AiohttpTransport

# Paged LISTs: thousands of children are fetched 500 at a time, not parsed in one piece.
LIST_CHUNK_SIZE = 500
logger = logging.getLogger(__name__)

InferenceServiceResource = create_namespaced_resource(
    c.GROUP, c.VERSION, c.KIND, c.PLURAL
)
KnativeServiceResource = create_namespaced_resource(
    c.KNATIVE_GROUP, c.KNATIVE_VERSION, "Service", "services"
)
KnativeRevisionResource = create_namespaced_resource(
    c.KNATIVE_GROUP, c.KNATIVE_VERSION, "Revision", "revisions"
)
PodResource = create_namespaced_resource("", "v1", "Pod", "pods")
VirtualServiceResource = create_namespaced_resource(
    c.ISTIO_GROUP, c.ISTIO_VERSION, "VirtualService", "virtualservices"
)
TrainedModelResource = create_namespaced_resource(
    c.GROUP, "v1alpha1", "TrainedModel", "trainedmodels"
)
CoreServiceResource = create_namespaced_resource("", "v1", "Service", "services")
ConfigMapResource = create_namespaced_resource("", "v1", "ConfigMap", "configmaps")
SecretResource = create_namespaced_resource("", "v1", "Secret", "secrets")
ServiceAccountResource = create_namespaced_resource("", "v1", "ServiceAccount", "serviceaccounts")
EventResource = create_namespaced_resource("", "v1", "Event", "events")
MutatingWebhookResource = create_global_resource(
    "admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration",
    "mutatingwebhookconfigurations",
)
ValidatingWebhookResource = create_global_resource(
    "admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
    "validatingwebhookconfigurations",
)
LeaseResource = create_namespaced_resource("coordination.k8s.io", "v1", "Lease", "leases")
DeploymentResource = create_namespaced_resource("apps", "v1", "Deployment", "deployments")
ReplicaSetResource = create_namespaced_resource("apps", "v1", "ReplicaSet", "replicasets")
HPAResource = create_namespaced_resource(
    "autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
IngressResource = create_namespaced_resource("networking.k8s.io", "v1", "Ingress", "ingresses")
HTTPRouteResource = create_namespaced_resource(c.GATEWAY_GROUP, "v1", "HTTPRoute", "httproutes")
CRDResource = create_global_resource(
    "apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions"
)

_BY_API_VERSION_KIND: dict[tuple[str, str], Any] = {
    (c.API_VERSION, c.KIND): InferenceServiceResource,
    (f"{c.GROUP}/v1alpha1", "TrainedModel"): TrainedModelResource,
    (c.KNATIVE_API_VERSION, "Service"): KnativeServiceResource,
    (c.KNATIVE_API_VERSION, "Revision"): KnativeRevisionResource,
    ("v1", "Pod"): PodResource,
    (c.ISTIO_API_VERSION, "VirtualService"): VirtualServiceResource,
    ("v1", "Service"): CoreServiceResource,
    ("v1", "ConfigMap"): ConfigMapResource,
    ("v1", "Secret"): SecretResource,
    ("v1", "ServiceAccount"): ServiceAccountResource,
    ("v1", "Event"): EventResource,
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"): MutatingWebhookResource,
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"):
        ValidatingWebhookResource,
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): CRDResource,
    ("coordination.k8s.io/v1", "Lease"): LeaseResource,
    (c.APPS_API_VERSION, "Deployment"): DeploymentResource,
    (c.APPS_API_VERSION, "ReplicaSet"): ReplicaSetResource,
    (c.HPA_API_VERSION, "HorizontalPodAutoscaler"): HPAResource,
    (c.INGRESS_API_VERSION, "Ingress"): IngressResource,
    (c.GATEWAY_API_VERSION, "HTTPRoute"): HTTPRouteResource,
}


class ClusterConfigError(Exception):
    """No usable kubeconfig or in-cluster service account."""


class KubeError(Exception):
    """A failed API call, reduced to what the reconciler decides on."""

    def __init__(self, message: str, status: int, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


class ResourceNotInstalled(KubeError):
    """The API group/kind is not served: its CRD is not installed."""


class NamespaceTerminating(KubeError):
    """The namespace is being deleted: the apiserver refuses anything new in it."""


def _terminating(status: int, message: str, causes: Any, details_kind: Any = None) -> bool:
    """True for the refusals of a namespace being deleted: 403 NamespaceTerminating while it
    terminates, and 404 for the namespace itself once it is gone."""
    if status == 404:
        return bool(details_kind == "namespaces")
    if status != 403:
        return False
    kinds = {str(cause.get("reason") or cause.get("type") or "") if isinstance(cause, dict)
             else str(getattr(cause, "reason", "") or getattr(cause, "type", "") or "")
             for cause in causes or ()}
    return "NamespaceTerminating" in kinds or "because it is being terminated" in message


class ApiUnavailable(KubeError):
    """The API server could not be reached (refused, reset, timed out): transient."""

    transient = True


class Undecodable(KubeError):
    """The response held JSON nested too deeply to decode (a poison object)."""


class WatchExpired(KubeError):
    """The watch's resourceVersion is too old (410 Gone): list again, then watch."""


@dataclass
class ListPage:
    """One page of a paged LIST; the last page's version is where a watch starts."""

    items: builtins.list[dict[str, Any]]
    resource_version: str


class _ListPage(msgspec.Struct):
    items: builtins.list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}


class _WatchLine(msgspec.Struct):
    type: str
    object: dict[str, Any]


# The fast path: straight to dicts, no wrapper object per item. A document nested too deeply
# for it goes through decoding.loads, which prunes and records the poison objects.
_decode_page = msgspec.json.Decoder(_ListPage)
_decode_line = msgspec.json.Decoder(_WatchLine)


def _page(data: bytes) -> tuple[builtins.list[dict[str, Any]], dict[str, Any]]:
    try:
        page = _decode_page.decode(data)
        return page.items, page.metadata
    except RecursionError:
        document = decoding.loads(data)
        return list(document.get("items") or []), dict(document.get("metadata") or {})


def _watch_line(line: str) -> tuple[str, dict[str, Any]]:
    try:
        event = _decode_line.decode(line)
        return event.type, event.object
    except RecursionError:
        document = decoding.loads(line)
        return str(document.get("type")), dict(document.get("object") or {})


# What the transport raises while the API server is down or restarting.
_TRANSPORT_ERRORS = (httpx2.TransportError, OSError, TimeoutError)


# Everything a call may raise that becomes a KubeError.
_API_ERRORS = (ApiError, httpx2.HTTPStatusError, RecursionError, *_TRANSPORT_ERRORS)


def resource_for(api_version: str, kind: str) -> Any:
    try:
        return _BY_API_VERSION_KIND[(api_version, kind)]
    except KeyError:
        raise ValueError(f"no resource registered for {api_version} {kind}") from None


def _translate(exc: BaseException, what: str) -> KubeError:
    if isinstance(exc, _TRANSPORT_ERRORS):
        counters.TRANSIENT_API_ERRORS.inc()
        detail = str(exc) or type(exc).__name__
        return ApiUnavailable(f"{what}: API server unreachable ({detail})", 0, "Unavailable")
    if isinstance(exc, RecursionError):
        return Undecodable(f"{what}: the response is nested too deeply to decode", 0,
                           "Undecodable")
    if isinstance(exc, ApiError):
        status = int(exc.status.code or 0)
        message = exc.status.message or str(exc)
        details = getattr(exc.status, "details", None)
        if _terminating(status, message, getattr(details, "causes", None),
                        getattr(details, "kind", None)):
            return NamespaceTerminating(f"{what}: {message}", status, "NamespaceTerminating")
        return KubeError(f"{what}: {message}", status, exc.status.reason or "")
    if isinstance(exc, httpx2.HTTPStatusError):
        status = exc.response.status_code
        try:
            body = exc.response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("kind") == "Status":
            message = str(body.get("message", ""))
            details = body.get("details") or {}
            if _terminating(status, message, details.get("causes"), details.get("kind")):
                return NamespaceTerminating(f"{what}: {message}", status,
                                            "NamespaceTerminating")
            # A real API Status (object not found, conflict, ...) that lightkube did not parse.
            return KubeError(f"{what}: {body.get('message', '')}", status,
                             str(body.get("reason", "")))
        if status == 404:
            # A bare "404 page not found": the resource type itself is not served.
            return ResourceNotInstalled(f"{what}: the resource type is not served", 404,
                                        "NotInstalled")
        return KubeError(f"{what}: HTTP {status}", status)
    return KubeError(f"{what}: {exc}", 0)


def _to_dict(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return obj
    result: dict[str, Any] = obj.to_dict()
    return result


def _default_client() -> AsyncClient:
    """lightkube on the environment's config (service account or kubeconfig), with the bytes
    sent through aiohttp (see transport.py)."""
    config = KubeConfig.from_env().get()
    if config is None or config.user is None:
        return AsyncClient(field_manager=FIELD_MANAGER)  # lightkube says what is missing
    context = verify_cluster(config.cluster, config.user, config.abs_file)
    return AsyncClient(config=config, field_manager=FIELD_MANAGER,
                       transport=AiohttpTransport(context))


class KubeApi:
    """The async API facade the operator and the webhooks use."""

    def __init__(self, client: AsyncClient | None = None,
                 observer: RequestObserver | None = None) -> None:
        try:
            self._client = client or _default_client()
        except ConfigError as exc:
            raise ClusterConfigError(str(exc)) from exc
        if observer is not None:
            # lightkube does not expose its httpx client; the hook only counts responses.
            instrument_httpx(self._client._client._client, observer)

    async def close(self) -> None:
        await self._client.close()

    # -- reads ------------------------------------------------------------------------------

    async def get(self, api_version: str, kind: str, name: str,
                  namespace: str | None = None) -> dict[str, Any] | None:
        """The object, or ``None`` when it does not exist."""
        resource = resource_for(api_version, kind)
        try:
            if namespace is None:
                obj = await self._client.get(resource, name)
            else:
                obj = await self._client.get(resource, name, namespace=namespace)
        except _API_ERRORS as exc:
            error = _translate(exc, f"get {kind} {namespace}/{name}")
            if error.not_found and not isinstance(error, ResourceNotInstalled):
                return None
            raise error from exc
        return _to_dict(obj)

    async def list(self, api_version: str, kind: str, namespace: str | None = None,
                   has_label: str | None = None,
                   label_equals: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        """Every object (of ``namespace``, or all), optionally only those with a label key
        (``has_label``) or a label key and value (``label_equals``), selected by the server.

        Items carry ``apiVersion`` and ``kind``, which a LIST response leaves out of them.
        Read as the informers read (``list_pages``): poison objects come back pruned and
        recorded.
        """
        selector = has_label or ("=".join(label_equals) if label_equals else None)
        return [obj async for page in self.list_pages(api_version, kind, selector,
                                                      namespace=namespace)
                for obj in page.items]

    # -- list and watch for the informers ---------------------------------------------------

    def _raw_request(self, api_version: str, kind: str, params: dict[str, str],
                     namespace: str | None, timeout: httpx2.Timeout | None = None
                     ) -> httpx2.Request:
        generic = self._client._client  # lightkube's GenericAsyncClient: URL and auth
        request = generic.prepare_request("list", res=resource_for(api_version, kind),
                                          namespace=namespace or "*", params=params)
        built: httpx2.Request = generic._client.build_request(
            "GET", request.url, params=request.params,
            timeout=timeout if timeout is not None else httpx2.USE_CLIENT_DEFAULT)
        return built

    async def _send(self, request: httpx2.Request, stream: bool = False) -> httpx2.Response:
        response: httpx2.Response = await self._client._client._client.send(request,
                                                                            stream=stream)
        return response

    async def list_pages(self, api_version: str, kind: str,
                         label_selector: str | None = None, *, namespace: str | None = None,
                         ) -> AsyncIterator[ListPage]:
        """Every object of a kind (in ``namespace``, or in all), 500 at a time, as plain dicts.

        Handed over a page at a time, so thousands of full objects (managedFields and all)
        are never held at once. Poison objects come back pruned and recorded (decoding.py).
        """
        params = {"limit": str(LIST_CHUNK_SIZE)}
        if label_selector:
            params["labelSelector"] = label_selector
        version = ""
        while True:
            try:
                response = await self._send(self._raw_request(api_version, kind, params, namespace))
                response.raise_for_status()
                items, metadata = _page(response.content)
            except _API_ERRORS as exc:
                raise _translate(exc, f"list {kind}") from exc
            except (msgspec.DecodeError, ValueError) as exc:
                raise KubeError(f"list {kind}: undecodable response: {exc}", 0) from exc
            del response
            for obj in items:
                obj["apiVersion"], obj["kind"] = api_version, kind
            version = str(metadata.get("resourceVersion") or version)
            token = metadata.get("continue")
            yield ListPage(items, version)
            del items  # nothing of this page outlives its turn
            if not token:
                return
            params["continue"] = str(token)

    async def watch_objects(self, api_version: str, kind: str, resource_version: str,
                            label_selector: str | None = None, timeout_seconds: int = 300,
                            *, namespace: str | None = None,
                            ) -> AsyncIterator[tuple[str, dict[str, Any] | None, str]]:
        """Watch events after ``resource_version`` as (type, object, resourceVersion).

        Bookmarks come through with a ``None`` object (only the version moves on). Ends when
        the server closes the stream; raises :class:`WatchExpired` on 410 Gone.
        """
        params = {"watch": "true", "allowWatchBookmarks": "true",
                  "resourceVersion": resource_version,
                  "timeoutSeconds": str(timeout_seconds)}
        if label_selector:
            params["labelSelector"] = label_selector
        timeout = httpx2.Timeout(10.0, read=timeout_seconds + 30.0)
        what = f"watch {kind}"
        try:
            response = await self._send(
                self._raw_request(api_version, kind, params, namespace, timeout), stream=True)
        except _API_ERRORS as exc:
            raise _translate(exc, what) from exc
        try:
            if response.status_code >= 400:
                await response.aread()
                try:
                    response.raise_for_status()
                except httpx2.HTTPStatusError as exc:
                    error = _translate(exc, what)
                    if error.status == 410:
                        raise WatchExpired(str(error), 410, "Expired") from exc
                    raise error from exc
            version = resource_version
            async for line in response.aiter_lines():
                if not line:
                    continue
                try:
                    event_type, obj = _watch_line(line)
                except (msgspec.DecodeError, ValueError) as exc:
                    raise KubeError(f"{what}: undecodable event: {exc}", 0) from exc
                if event_type == "ERROR":
                    code = int(obj.get("code") or 0)
                    if code == 410:
                        raise WatchExpired(f"{what}: {obj.get('message', '')}", 410, "Expired")
                    raise KubeError(f"{what}: {obj.get('message', '')}", code)
                version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                if event_type == "BOOKMARK":
                    yield "BOOKMARK", None, version
                    continue
                obj.setdefault("apiVersion", api_version)
                obj.setdefault("kind", kind)
                yield event_type, obj, version
        except _API_ERRORS as exc:
            raise _translate(exc, what) from exc
        finally:
            await response.aclose()

    async def reachable(self) -> bool:
        """True when the API server answers at all (``GET /version``)."""
        # lightkube has no call for a non-resource path; its HTTP client (the innermost
        # ``_client``) carries the base URL and the credentials.
        try:
            response = await self._client._client._client.get("/version", timeout=5.0)
        except _TRANSPORT_ERRORS:
            return False
        return response.status_code < 500

    # -- writes -----------------------------------------------------------------------------

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply ``obj`` as the operator's field manager (taking ownership)."""
        resource = resource_for(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        what = f"apply {obj['kind']} {meta.get('namespace', '')}/{meta['name']}"
        try:
            result = await self._client.apply(resource(obj), force=True)
        except _API_ERRORS as exc:
            raise _translate(exc, what) from exc
        return _to_dict(result)

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj``; a KubeError with ``conflict`` when it exists already."""
        return await self._write("create", obj)

    async def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Update (PUT) ``obj``; with ``metadata.resourceVersion`` set, a KubeError with
        ``conflict`` when someone else changed it since (optimistic concurrency)."""
        return await self._write("update", obj)

    async def _write(self, verb: str, obj: dict[str, Any]) -> dict[str, Any]:
        resource = resource_for(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        send = self._client.create if verb == "create" else self._client.replace
        try:
            result = await send(resource(obj))
        except _API_ERRORS as exc:
            raise _translate(exc, f"{verb} {obj['kind']} {meta.get('namespace')}/"
                                  f"{meta['name']}") from exc
        return _to_dict(result)

    async def apply_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of the status subresource: owned fields left out are removed."""
        resource = resource_for(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        what = f"apply status of {obj['kind']} {meta.get('namespace', '')}/{meta['name']}"
        try:
            result = await self._client.apply(resource.Status(obj), force=True)
        except _API_ERRORS as exc:
            raise _translate(exc, what) from exc
        return _to_dict(result)

    async def merge_patch(self, api_version: str, kind: str, name: str, patch: dict[str, Any],
                          namespace: str | None = None) -> dict[str, Any]:
        """A JSON merge patch (``null`` removes a field, whoever set it).

        For the rare write server-side apply cannot express: replacing a one-of field that
        another field manager set, such as a CRD conversion webhook's ``service`` by ``url``.
        """
        resource = resource_for(api_version, kind)
        try:
            if namespace is None:
                result = await self._client.patch(resource, name, patch,
                                                  patch_type=PatchType.MERGE)
            else:
                result = await self._client.patch(resource, name, patch, namespace=namespace,
                                                  patch_type=PatchType.MERGE)
        except (ApiError, httpx2.HTTPStatusError) as exc:
            raise _translate(exc, f"patch {kind} {namespace or ''}/{name}") from exc
        return _to_dict(result)

    async def delete(self, api_version: str, kind: str, name: str,
                     namespace: str | None = None) -> bool:
        """Delete with background propagation; ``False`` when it was already gone."""
        resource = resource_for(api_version, kind)
        try:
            if namespace is None:
                await self._client.delete(resource, name, cascade=CascadeType.BACKGROUND)
            else:
                await self._client.delete(resource, name, namespace=namespace,
                                          cascade=CascadeType.BACKGROUND)
        except _API_ERRORS as exc:
            error = _translate(exc, f"delete {kind} {namespace}/{name}")
            if error.not_found and not isinstance(error, ResourceNotInstalled):
                return False
            raise error from exc
        return True

    async def post_event(self, involved: dict[str, Any], event_type: str, reason: str,
                         message: str) -> None:
        """Record a core/v1 Event about ``involved``; failures are logged, never raised."""
        meta = involved["metadata"]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{meta['name']}.",
                "namespace": meta.get("namespace") or "default",
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        resource: Any = EventResource
        try:
            await self._client.create(resource(event))
        except _API_ERRORS as exc:
            logger.warning("could not post event %s on %s: %s", reason, meta["name"], exc)
