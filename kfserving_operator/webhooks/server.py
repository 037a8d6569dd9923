"""The HTTPS admission server, running inside the operator's event loop.

It is a plain aiohttp application rather than kopf's admission machinery so that the paths,
the scope (``objectSelector``/``namespaceSelector``) and the certificates are exactly those
of KFServing's manifests, and so that the pod mutator can read ServiceAccounts and Secrets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.k8s import decoding
from kfserving_operator.k8s.api import KubeApi, KubeError
from kfserving_operator.listening import BindError, listen
from kfserving_operator.podmutation.credentials import (
    CredentialSources,
    secret_names_to_fetch,
    service_account_name,
)
from kfserving_operator.podmutation.mutator import credentials_needed
from kfserving_operator.webhooks import admission
from kfserving_operator.webhooks.certificates import ServingCertificate
from kfserving_operator.webhooks.legacy_server import legacy_routes
from kfserving_operator.webhooks.registration import (
    DEFAULTER_PATH,
    POD_MUTATOR_PATH,
    VALIDATOR_PATH,
)

logger = logging.getLogger(__name__)

ConfigSource = Callable[[], OperatorConfig]
WEBHOOK_NAMES = {DEFAULTER_PATH: "defaulter", VALIDATOR_PATH: "validator",
                 POD_MUTATOR_PATH: "pod-mutator"}

# The API server accepts request bodies up to 3 MiB; an AdmissionReview of an update carries
# the object and the old object, plus the review around them. Anything larger cannot come
# from it and is refused with 413 before it is read.
MAX_BODY_BYTES = 7 * 1024 * 1024
# A client that takes longer than this for its TLS handshake, for a request's headers (from
# the connection's start, or from the request's first byte) or for its body is disconnected:
# the API server sends a review in one go, and a trickling client must not hold a connection.
HEADER_TIMEOUT_SECONDS = float(os.environ.get("KFSERVING_WEBHOOK_HEADER_TIMEOUT", "10"))
BODY_TIMEOUT_SECONDS = float(os.environ.get("KFSERVING_WEBHOOK_BODY_TIMEOUT", "10"))
HANDSHAKE_TIMEOUT_SECONDS = 10.0
# An idle kept-alive connection is closed after this long. Longer than the API server keeps
# an idle connection (Go's HTTP transport: 90 s), so that it is always the client that drops
# one: a server closing first races the client's next request on it, which the client reports
# as a failed admission call ("EOF"), since a POST is not retried.
IDLE_TIMEOUT_SECONDS = float(os.environ.get("KFSERVING_WEBHOOK_IDLE_TIMEOUT", "120"))
# Connections served at once; more are closed as soon as they are accepted.
MAX_CONNECTIONS = int(os.environ.get("KFSERVING_WEBHOOK_MAX_CONNECTIONS", "200"))


class BadReview(ValueError):
    """The body is JSON but not an AdmissionReview we can answer."""


def decode_review(body: bytes) -> dict[str, Any]:
    """The AdmissionReview in ``body``; :class:`BadReview` when it is not one.

    JSON nested deeper than :data:`~kfserving_operator.k8s.decoding.MAX_DEPTH` levels is
    pruned while decoding (never a ``RecursionError``); :func:`too_deep` then names the field.
    """
    try:
        try:
            review = json.loads(body)
        except RecursionError:
            review = json.loads(decoding.prune(body.decode("utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadReview(f"body is not JSON: {exc}") from exc
    if not isinstance(review, dict):
        raise BadReview(f"an AdmissionReview is a JSON object; got {type(review).__name__}")
    request = review.get("request")
    if not isinstance(request, dict):
        raise BadReview("an AdmissionReview needs a 'request' object")
    for key in ("object", "oldObject"):
        if request.get(key) is not None and not isinstance(request[key], dict):
            raise BadReview(f"request.{key} must be a JSON object")
    return review


def too_deep(review: dict[str, Any]) -> str | None:
    """The field path of a value nested deeper than the operator handles, or None."""
    request = review["request"]
    for key in ("object", "oldObject"):
        path = decoding.deep_path(request.get(key), decoding.MAX_DEPTH - 3)
        if path is not None:
            return path
    return None


async def read_credential_sources(api: KubeApi, pod: dict[str, Any],
                                  namespace: str) -> CredentialSources:
    """The pod's ServiceAccount and the Secrets it lists; missing ones are simply absent."""
    account_name = service_account_name(pod)
    try:
        account = await api.get("v1", "ServiceAccount", account_name, namespace)
    except KubeError as exc:
        logger.debug("service account %s/%s unreadable: %s", namespace, account_name, exc)
        return CredentialSources()
    if account is None:
        logger.debug("service account %s/%s not found; no credentials", namespace, account_name)
        return CredentialSources()
    secrets: dict[str, dict[str, Any]] = {}
    for name in secret_names_to_fetch(account):
        try:
            secret = await api.get("v1", "Secret", name, namespace)
        except KubeError as exc:
            logger.debug("secret %s/%s unreadable: %s", namespace, name, exc)
            continue
        if secret is not None:
            secrets[name] = secret
    return CredentialSources(service_account=account, secrets=secrets)


class AdmissionObserver(Protocol):
    """Where the server reports each answered review (the operator's metrics)."""

    def observe_admission(self, webhook: str, result: str, seconds: float) -> None: ...


class AdmissionServer:
    """Serves the three webhooks over TLS; start and stop it from kopf's startup/cleanup."""

    def __init__(self, api: KubeApi, config: ConfigSource, certificate: ServingCertificate,
                 host: str, port: int, observer: AdmissionObserver | None = None) -> None:
        self._api = api
        self._config = config
        self._certificate = certificate
        self._host = host
        self.port = port  # the port actually bound once started (0 picks a free one)
        self._observer = observer
        self._runner: web.AppRunner | None = None
        self._context: ssl.SSLContext | None = None
        # While draining (the replica is stopping), every answer closes its connection, so
        # the apiserver's kept-alive connections move to the replicas that stay.
        self.draining = False

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(DEFAULTER_PATH, self._wrap(self._defaulting))
        app.router.add_post(VALIDATOR_PATH, self._wrap(self._validation))
        app.router.add_post(POD_MUTATOR_PATH, self._wrap(self._pods))
        # v1alpha2 defaulter and validator, TrainedModel validator, CRD conversion.
        for path, handler in legacy_routes(self._api, self._config):
            app.router.add_post(path, self._wrap(handler))
        app.router.add_get("/healthz", self._healthz)
        return app

    def _wrap(
        self, handler: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            webhook = WEBHOOK_NAMES.get(request.path, request.path)
            started = time.monotonic()
            deadline = _HeaderDeadline.of(request.transport)
            if deadline is not None:
                deadline.request_started()
            try:
                response, result = await answer(request)
            finally:
                if deadline is not None:
                    deadline.request_finished()
            if self.draining:
                response.force_close()
            if self._observer is not None:
                self._observer.observe_admission(webhook, result, time.monotonic() - started)
            return response

        async def answer(request: web.Request) -> tuple[web.Response, str]:
            """The response, and the result for the metrics: allowed, denied or error."""
            try:
                body = await asyncio.wait_for(request.read(), BODY_TIMEOUT_SECONDS)
            except TimeoutError:
                return web.json_response(
                    {"error": f"body not received within {BODY_TIMEOUT_SECONDS:g}s"},
                    status=408, headers={"Connection": "close"}), "error"
            try:
                review = decode_review(body)
            except BadReview as exc:
                return web.json_response({"error": str(exc)}, status=400), "error"
            path = too_deep(review)
            if path is not None:
                return web.json_response(admission.review_response(
                    review, allowed=False, code=400,
                    message=f"{path}: nested deeper than {decoding.MAX_DEPTH} levels; "
                            "objects this deep are not accepted")), "denied"
            try:
                reply = await handler(review)
                result = "allowed" if reply.get("response", {}).get("allowed") else "denied"
            except Exception as exc:  # never let one review take the server down
                logger.exception("admission review failed on %s", request.path)
                reply = admission.review_response(
                    review, allowed=False, code=500,
                    message=f"internal error in {request.path}: {exc}",
                )
                result = "error"
            return web.json_response(reply), result

        return serve

    async def _defaulting(self, review: dict[str, Any]) -> dict[str, Any]:
        return admission.review_inference_service_defaulting(review, self._config())

    async def _validation(self, review: dict[str, Any]) -> dict[str, Any]:
        return admission.review_inference_service_validation(review, self._config())

    async def _pods(self, review: dict[str, Any]) -> dict[str, Any]:
        request = review.get("request", {})
        pod = request.get("object") or {}
        namespace = request.get("namespace") or pod.get("metadata", {}).get("namespace", "")
        sources = CredentialSources()
        if credentials_needed(pod):
            sources = await read_credential_sources(self._api, pod, namespace)
        answer, notes = admission.review_pod_mutation(review, self._config(), sources)
        for note in notes:
            logger.debug("pod %s/%s: %s", namespace,
                         pod.get("metadata", {}).get("name")
                         or pod.get("metadata", {}).get("generateName"), note)
        return answer

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self._certificate.cert_file),
                                str(self._certificate.key_file))
        self._context = context
        return context

    @property
    def certificate(self) -> ServingCertificate:
        return self._certificate

    def use_certificate(self, certificate: ServingCertificate) -> None:
        """Serve a renewed certificate; connections made from now on get the new one."""
        self._certificate = certificate
        if self._context is not None:
            self._context.load_cert_chain(str(certificate.cert_file), str(certificate.key_file))

    async def start(self) -> None:
        # aiohttp's keep-alive timer closes idle connections; the header deadline is ours
        # (_HeaderDeadline). No lingering: a body that did not arrive in time is not waited
        # for any longer.
        self._runner = web.AppRunner(self._app(), access_log=None,
                                     keepalive_timeout=IDLE_TIMEOUT_SECONDS,
                                     lingering_time=0)
        await self._runner.setup()
        try:
            self.port = await listen(self._runner, self._host, self.port,
                                     "admission webhooks", site=_GuardedSite,
                                     ssl_context=self._ssl_context())
        except BindError:
            self._runner = None
            raise
        logger.info("admission webhooks serving on https://%s:%d", self._host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await asyncio.shield(self._runner.cleanup())
            self._runner = None


class _Refused(asyncio.Protocol):
    """Closes a connection accepted beyond :data:`MAX_CONNECTIONS`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _HeaderDeadline(asyncio.Protocol):
    """aiohttp's protocol for one connection, with a deadline for each request's headers.

    The clock starts when the connection is made and at the first byte after a response, and
    stops when the request reaches a handler; a client that has not sent complete headers by
    then is disconnected. Between requests only the (longer) idle timeout applies.
    """

    _by_transport: weakref.WeakKeyDictionary[asyncio.BaseTransport, _HeaderDeadline] = (
        weakref.WeakKeyDictionary())

    def __init__(self, inner: asyncio.Protocol) -> None:
        self._inner = inner
        self._transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._in_request = False

    @classmethod
    def of(cls, transport: asyncio.BaseTransport | None) -> _HeaderDeadline | None:
        return cls._by_transport.get(transport) if transport is not None else None

    def _arm(self) -> None:
        if self._timer is None and not self._in_request:
            self._timer = asyncio.get_running_loop().call_later(HEADER_TIMEOUT_SECONDS,
                                                                self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._transport is not None and not self._in_request:
            logger.debug("closing a webhook connection: no complete request headers within "
                         "%gs", HEADER_TIMEOUT_SECONDS)
            if isinstance(self._transport, asyncio.Transport):
                self._transport.abort()  # a client this slow may not read a TLS close either
            else:
                self._transport.close()

    def request_started(self) -> None:
        self._in_request = True
        self._disarm()

    def request_finished(self) -> None:
        self._in_request = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._by_transport[transport] = self
        self._arm()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._arm()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class _GuardedSite(web.TCPSite):
    """A TCP site with a TLS handshake timeout, a header deadline and a cap on open
    connections."""

    async def start(self) -> None:
        await super(web.TCPSite, self).start()  # BaseSite: registers the site
        server = self._runner.server
        assert server is not None

        def protocol() -> asyncio.BaseProtocol:
            if len(server.connections) >= MAX_CONNECTIONS:
                return _Refused()
            return _HeaderDeadline(server())

        self._server = await asyncio.get_running_loop().create_server(
            protocol, self._host, self._port, ssl=self._ssl_context,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT_SECONDS if self._ssl_context else None,
            backlog=self._backlog, reuse_address=self._reuse_address)
