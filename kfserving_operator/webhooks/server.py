"""The HTTPS admission server, running inside the operator's event loop.

It is a plain aiohttp application rather than kopf's admission machinery so that the paths,
the scope (``objectSelector``/``namespaceSelector``) and the certificates are exactly those
of KFServing's manifests, and so that the pod mutator can read ServiceAccounts and Secrets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.k8s.api import KubeApi, KubeError
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
MAX_REVIEW_BYTES = 8 * 1024 * 1024


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


class AdmissionServer:
    """Serves the three webhooks over TLS; start and stop it from kopf's startup/cleanup."""

    def __init__(self, api: KubeApi, config: ConfigSource, certificate: ServingCertificate,
                 host: str, port: int) -> None:
        self._api = api
        self._config = config
        self._certificate = certificate
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._context: ssl.SSLContext | None = None

    def _app(self) -> web.Application:
        # A review carries the object and the old object, each up to the apiserver's 3 MiB
        # request limit (aiohttp refuses bodies over 1 MiB by default).
        app = web.Application(client_max_size=MAX_REVIEW_BYTES)
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
            try:
                review = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                return web.json_response({"error": "body is not an AdmissionReview"}, status=400)
            try:
                answer = await handler(review)
            except Exception as exc:  # never let one review take the server down
                logger.exception("admission review failed on %s", request.path)
                answer = admission.review_response(
                    review, allowed=False, code=500,
                    message=f"internal error in {request.path}: {exc}",
                )
            return web.json_response(answer)

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
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port,
                           ssl_context=self._ssl_context())
        await site.start()
        logger.info("admission webhooks serving on https://%s:%d", self._host, self._port)

    async def stop(self) -> None:
        if self._runner is not None:
            await asyncio.shield(self._runner.cleanup())
            self._runner = None
