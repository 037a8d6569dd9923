"""The webhooks' life in the operator process: served, registered, kept current, removed.

Outside a cluster (``local``) the server uses a throw-away loopback CA and registers ``url``
client configs, removed again when the operator stops. In a cluster (``cluster``) it uses a
mounted certificate (cert-manager rotates it; it is reloaded when it changes) or a
self-managed one in a Secret, which only the leader issues and renews; every replica serves
what the Secret holds and keeps the ``caBundle`` current. ``off`` serves nothing.

The operator shell builds a :class:`Webhooks` from its options and runtime; nothing here
imports the shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import shutil
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from kfserving_operator.api import constants as c
from kfserving_operator.k8s.api import KubeApi, KubeError
from kfserving_operator.k8s.leader import LeaderElector, LeaseTiming
from kfserving_operator.listening import BindError
from kfserving_operator.reconcile.common import is_subset
from kfserving_operator.webhooks import certificates, legacy_registration, registration
from kfserving_operator.webhooks.legacy_registration import ConversionRegistration
from kfserving_operator.webhooks.server import AdmissionObserver, AdmissionServer, ConfigSource

logger = logging.getLogger("kfserving_operator")

# How often certificates are checked; the environment overrides it (tests use seconds).
CERTIFICATE_CHECK_SECONDS = float(os.environ.get("KFSERVING_CERT_CHECK_SECONDS", 3600))
MOUNTED_CERTIFICATE_CHECK_SECONDS = float(os.environ.get("KFSERVING_CERT_CHECK_SECONDS", 60))

ClientConfig = Callable[[str], dict[str, Any]]


class WebhookStartError(Exception):
    """The webhooks cannot start; the message is the one line the user sees."""


class WebhookOptions(Protocol):
    """What the webhooks read of the operator's options (``OperatorOptions``)."""

    namespace: str
    webhook_mode: str  # "local", "cluster" or "off"
    webhook_host: str
    webhook_port: int
    webhook_url: str | None
    cert_dir: str | None
    watch_namespaces: tuple[str, ...]
    lease_timing: LeaseTiming


class RegistrationState(Protocol):
    """Where readiness learns that the webhooks are registered (``Readiness``)."""

    webhooks_registered: bool


@dataclass
class Webhooks:
    """The admission server of one replica, its registration and its certificate."""

    options: WebhookOptions
    api: KubeApi
    config: ConfigSource
    readiness: RegistrationState
    elector: LeaderElector | None = None
    observer: AdmissionObserver | None = None
    conversion: ConversionRegistration = field(default_factory=ConversionRegistration)
    server: AdmissionServer | None = None
    renewal: asyncio.Task[None] | None = None
    # Where a certificate read from the Secret is written for the TLS server: one directory,
    # rewritten on renewal (created on first use, in cluster mode only).
    _cert_files: Path | None = None
    # Temporary directories holding key material, removed when the webhooks stop.
    temporary: list[Path] = field(default_factory=list)

    @property
    def cert_files(self) -> Path:
        if self._cert_files is None:
            self._cert_files = certificates.private_directory()
            self.temporary.append(self._cert_files)
        return self._cert_files

    @property
    def leading(self) -> bool:
        """True while this replica may write: it holds the Lease (or election is off)."""
        return self.elector is None or self.elector.is_leader

    async def start(self) -> None:
        """Serve the webhooks, then register them; readiness follows the registration.

        Raises :class:`WebhookStartError` (one line, no retry loop) when the port is taken,
        when a local run would replace another installation's webhooks, or when registering
        fails.
        """
        options = self.options
        if options.webhook_mode == "off":
            self.readiness.webhooks_registered = True
            return
        for stale in certificates.remove_stale_directories():
            logger.info("removed %s, left by an operator that was killed", stale)
        if options.webhook_mode == "local":
            certificate = certificates.loopback_certificate(options.webhook_host)
            self.temporary.append(certificate.cert_file.parent)
        else:
            try:
                certificate = await self._cluster_certificate()
            except (KubeError, OSError) as exc:
                raise WebhookStartError(f"no webhook serving certificate: {exc}") from exc

        self.server = AdmissionServer(self.api, self.config, certificate,
                                      options.webhook_host, options.webhook_port,
                                      self.observer)
        try:
            await self.server.start()
        except BindError as exc:
            self.server = None
            raise WebhookStartError(f"{exc}; choose another port with --webhook-port") from exc

        client_config: ClientConfig
        if options.webhook_mode == "local":
            base = f"https://{options.webhook_host}:{self.server.port}"
            await self._refuse_foreign_registration(base)

            def client_config(path: str) -> dict[str, Any]:
                return registration.url_client_config(base, path, certificate.ca_bundle)
        else:
            client_config = self._cluster_client_config(certificate.ca_bundle)
        # Registering after the server is up means the apiserver never calls a dead endpoint.
        try:
            await self._register(client_config)
        except KubeError as exc:
            raise WebhookStartError(
                f"cannot register the webhook configurations: {exc}") from exc
        self.readiness.webhooks_registered = True
        if options.webhook_mode == "cluster":
            watcher = (self._reload_mounted_certificates if options.cert_dir
                       else self._renew_certificates)
            self.renewal = asyncio.create_task(watcher(), name="webhook-certificate-renewal")

    async def _register(self, client_config: ClientConfig) -> None:
        """Apply both configurations, unless they already hold exactly this (another replica
        registered them): a replica's start or a certificate pick-up then writes nothing."""
        api, options = self.api, self.options
        wrote = False
        # The InferenceService webhooks, then the TrainedModel validator and the v1alpha2 ones.
        for desired in (registration.mutating_configuration(client_config, options.namespace,
                                                            options.watch_namespaces),
                        registration.validating_configuration(client_config,
                                                              options.watch_namespaces),
                        *legacy_registration.configurations(client_config,
                                                            options.watch_namespaces)):
            current = await api.get(desired["apiVersion"], desired["kind"],
                                    desired["metadata"]["name"])
            if current is not None and is_subset(
                    {"metadata": {"labels": desired["metadata"].get("labels", {})},
                     "webhooks": desired["webhooks"]}, current):
                continue
            await api.apply(desired)
            wrote = True
        # The InferenceService CRD's conversion webhook.
        await self.conversion.register(api, client_config)
        logger.info("webhook configurations %s (%s mode)",
                    "registered" if wrote else "already registered", options.webhook_mode)

    def _cluster_client_config(self, bundle: bytes) -> ClientConfig:
        """The Service reference, or the URL the replicas are reached at (``--webhook-url``)."""
        options = self.options

        def client_config(path: str) -> dict[str, Any]:
            if options.webhook_url:
                return registration.url_client_config(options.webhook_url, path, bundle)
            return registration.service_client_config(c.WEBHOOK_SERVICE_NAME,
                                                      options.namespace, path, bundle)
        return client_config

    async def _refuse_foreign_registration(self, own_base: str) -> None:
        """A local run never replaces webhooks that someone else's operator serves.

        Another installation's configurations (the Helm chart's, pointing at a Service), or
        those of another local operator that still answers, stop the start-up with one line.
        A leftover of a local operator that was killed (its port answers no more) is replaced.
        """
        name = registration.CONFIGURATION_NAME
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            try:
                existing = await self.api.get("admissionregistration.k8s.io/v1", kind, name)
            except KubeError as exc:
                raise WebhookStartError(f"cannot read {kind} {name}: {exc}") from exc
            if existing is None:
                continue
            for endpoint in registration.endpoints(existing):
                if endpoint.service is not None:
                    raise WebhookStartError(
                        f"{kind} {name} already sends admission to Service "
                        f"{endpoint.service} (an operator installed in this cluster); a local "
                        "run would take it over. Uninstall that operator or use a cluster of "
                        "your own")
                url = endpoint.url or ""
                if url.startswith(own_base + "/"):
                    continue
                where = urlsplit(url)
                if where.hostname not in registration.LOOPBACK_HOSTS:
                    raise WebhookStartError(
                        f"{kind} {name} already sends admission to {url}; a local run would "
                        "take it over. Delete it first if it is stale")
                if where.port and await _endpoint_answers(where.hostname, where.port):
                    raise WebhookStartError(
                        f"another local operator serves the webhooks at {url} "
                        f"({kind} {name}); stop it first")

    async def _reload_mounted_certificates(self) -> None:
        """cert-manager rotates the mounted files in place: serve the new ones when they
        change."""
        assert self.options.cert_dir is not None
        directory = Path(self.options.cert_dir)
        # The mounted files change in place, so remember the content that is being served.
        served_pem = certificates.from_directory(directory).cert_pem
        while True:
            await asyncio.sleep(MOUNTED_CERTIFICATE_CHECK_SECONDS)
            try:
                current = certificates.from_directory(directory)
                if current.cert_pem == served_pem:
                    continue
                served_pem = current.cert_pem
                await self._serve_and_register(current)
                logger.info("reloaded the webhook certificate from %s", directory)
            except (KubeError, OSError, ssl.SSLError) as exc:
                logger.error("webhook certificate reload failed: %s", exc)

    async def _renew_certificates(self) -> None:
        """Renew the self-managed certificate before it expires and keep the caBundle current.

        Also picks up a Secret renewed by someone else (another replica, an admin deleting
        it), so the served certificate and the registered caBundle always match the Secret.
        """
        while True:
            await asyncio.sleep(CERTIFICATE_CHECK_SECONDS)
            try:
                secret = await self._current_secret()
                served = self.server.certificate if self.server is not None else None
                if served is not None and certificates.secret_matches(secret, served):
                    continue
                await self._serve_and_register(
                    certificates.from_secret(secret, self.cert_files))
            except (KubeError, OSError) as exc:
                logger.error("webhook certificate check failed: %s", exc)

    async def _serve_and_register(self, certificate: certificates.ServingCertificate) -> None:
        """Serve a new certificate, and register its CA as the caBundle."""
        if self.server is not None:
            self.server.use_certificate(certificate)
        await self._register(self._cluster_client_config(certificate.ca_bundle))

    async def _cluster_certificate(self) -> certificates.ServingCertificate:
        if self.options.cert_dir:
            return certificates.from_directory(Path(self.options.cert_dir))
        return certificates.from_secret(await self._current_secret(), self.cert_files)

    async def _current_secret(self) -> dict[str, Any]:
        """The certificate Secret; only the leader issues or renews it.

        Replicas start together, and two of them issuing at once would each serve a
        certificate of their own CA while only one CA can win the Secret and the
        ``caBundle``. So a follower uses the Secret as long as it is valid and otherwise
        waits for the leader to issue it.
        """
        options, api = self.options, self.api
        waiting_logged = False
        while True:
            secret = await api.get("v1", "Secret", certificates.SECRET_NAME, options.namespace)
            now = datetime.datetime.now(datetime.UTC)
            if secret is not None and not certificates.secret_needs_renewal(secret, now):
                return secret
            if self.leading:
                # Owned by the installed webhook Service, so uninstalling removes it too,
                # unless the installation asks to keep it (KFSERVING_KEEP_CERT_SECRET, the
                # chart's certificate.keepOnUninstall) or there is no such Service (`make run`).
                owner = None
                if os.environ.get("KFSERVING_KEEP_CERT_SECRET", "").lower() not in ("1", "true"):
                    owner = await installation_owner(api, options.namespace)
                secret = await api.apply(certificates.new_secret(
                    c.WEBHOOK_SERVICE_NAME, options.namespace, previous=secret, owner=owner))
                logger.info("issued a new webhook serving certificate into secret %s/%s",
                            options.namespace, certificates.SECRET_NAME)
                return secret
            if secret is not None and certificates.secret_is_usable(secret, now):
                return secret  # due for renewal, which the leader does
            if not waiting_logged:
                logger.info("waiting for the leader to issue the webhook certificate into "
                            "%s/%s", options.namespace, certificates.SECRET_NAME)
                waiting_logged = True
            # Look again after a retry period, or at once when this replica wins the Lease.
            if self.elector is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.elector.leading.wait(),
                                           options.lease_timing.retry_period)
            else:
                await asyncio.sleep(options.lease_timing.retry_period)

    async def unregister_local(self) -> None:
        """Local mode: remove our loopback registration before the server stops.

        With failurePolicy Fail a registration that points at a dead loopback port would
        block every later InferenceService write. Cluster registrations stay: other replicas
        (or the next pod) serve them.
        """
        if (self.options.webhook_mode == "local" and self.server
                and self.readiness.webhooks_registered):
            self.readiness.webhooks_registered = False
            configurations = [(kind, registration.CONFIGURATION_NAME) for kind in
                              ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")]
            for kind, name in [*configurations, *legacy_registration.LOCAL_CLEANUP]:
                try:
                    await self.api.delete("admissionregistration.k8s.io/v1", kind, name)
                except KubeError as exc:
                    logger.warning("could not remove %s: %s", kind, exc)
            try:
                await self.conversion.restore_shipped(self.api)
            except KubeError as exc:
                logger.warning("could not restore the CRD's conversion webhook: %s", exc)

    async def stop(self) -> None:
        """Unregister (local mode), stop serving, remove the key material (idempotent)."""
        if self.renewal is not None:
            self.renewal.cancel()
        await self.unregister_local()
        if self.server is not None:
            await self.server.stop()
        for directory in self.temporary:
            shutil.rmtree(directory, ignore_errors=True)
        self.temporary.clear()


async def installation_owner(api: KubeApi, namespace: str) -> dict[str, Any] | None:
    """An ownerReference to the installed webhook Service, for what the operator creates in
    its namespace (certificate Secret, last-good config): uninstalling the manifests deletes
    the Service, and the garbage collector then deletes those too. None without the Service
    (`make run`) or when it cannot be read."""
    try:
        service = await api.get("v1", "Service", c.WEBHOOK_SERVICE_NAME, namespace)
    except KubeError as exc:
        logger.warning("cannot read the webhook Service to own what the operator creates: %s",
                       exc)
        return None
    if service is None:
        return None
    return {"apiVersion": "v1", "kind": "Service", "name": service["metadata"]["name"],
            "uid": service["metadata"]["uid"]}


async def _endpoint_answers(host: str, port: int) -> bool:
    try:
        async with asyncio.timeout(2):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True
