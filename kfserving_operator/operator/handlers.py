"""kopf wiring: informers feed the cache and the work queue; startup brings up the webhooks.

InferenceServices and their children come from the operator's own informers (``informer.py``:
one paged LIST, then a watch from its resourceVersion), not from kopf: at thousands of models
kopf's per-event machinery for the initial listing cost more CPU and memory than everything
else, and held every new event behind it. kopf runs the process (login, startup, cleanup,
signals) and watches our ConfigMap and the Knative/Istio CRDs with ``@kopf.on.event``
handlers only, which store nothing on the objects, so an operator restart over existing
objects writes nothing at all. Reconciliation is level-based: an event only marks its
InferenceService as needing a reconcile (see ``workqueue.py``).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import shutil
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf

from kfserving_operator.api import constants as c
from kfserving_operator.api.config import CONFIGMAP_NAME, LAST_GOOD_CONFIGMAP_NAME
from kfserving_operator.k8s.api import KubeApi, KubeError
from kfserving_operator.k8s.decoding import PoisonReport
from kfserving_operator.operator import poison
from kfserving_operator.operator.cache import IsvcKey, ObjectCache, controller_owner
from kfserving_operator.operator.config_store import ConfigStore
from kfserving_operator.operator.informer import Informer
from kfserving_operator.operator.reconciler import Dependencies, ReconcileFailed, Reconciler
from kfserving_operator.operator.workqueue import WorkQueue
from kfserving_operator.webhooks import certificates, registration
from kfserving_operator.webhooks.server import AdmissionServer

logger = logging.getLogger("kfserving_operator")

KNATIVE_CRD = f"services.{c.KNATIVE_GROUP}"
ISTIO_CRD = f"virtualservices.{c.ISTIO_GROUP}"
# How often certificates are checked; the environment overrides it (tests use seconds).
CERTIFICATE_CHECK_SECONDS = float(os.environ.get("KFSERVING_CERT_CHECK_SECONDS", 3600))
MOUNTED_CERTIFICATE_CHECK_SECONDS = float(os.environ.get("KFSERVING_CERT_CHECK_SECONDS", 60))
# While the API server is unreachable, how often to look whether it is back.
RECOVERY_PROBE_SECONDS = 1.0
# kopf's retries of a failed request (its watches and listings); the longest one bounds how
# long a watch stays away after the API server is back (kopf's default goes up to 21 s).
KOPF_ERROR_BACKOFFS = (0.5, 1.0, 1.0, 2.0, 2.0, 2.0)


@dataclass
class OperatorOptions:
    """How this operator process runs."""

    namespace: str
    webhook_mode: str  # "local", "cluster" or "off"
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 9443
    cert_dir: str | None = None
    workers: int = 8


@dataclass
class Runtime:
    """Everything the handlers share, created at startup."""

    options: OperatorOptions
    cache: ObjectCache = field(default_factory=ObjectCache)
    config: ConfigStore = field(default_factory=ConfigStore)
    dependencies: Dependencies = field(default_factory=Dependencies)
    api: KubeApi | None = None
    queue: WorkQueue[IsvcKey] | None = None
    reconciler: Reconciler | None = None
    server: AdmissionServer | None = None
    renewal: asyncio.Task[None] | None = None
    recovery: asyncio.Task[None] | None = None
    informers: list[Informer] = field(default_factory=list)
    # Poison reports being posted (held so the tasks are not collected half-way).
    reporting: set[asyncio.Task[None]] = field(default_factory=set)
    # Where a certificate read from the Secret is written for the TLS server: one directory,
    # rewritten on renewal (created on first use, in cluster mode only).
    _cert_files: Path | None = None

    # Temporary directories holding key material, removed when the operator stops.
    temporary: list[Path] = field(default_factory=list)

    @property
    def cert_files(self) -> Path:
        if self._cert_files is None:
            self._cert_files = certificates.private_directory()
            self.temporary.append(self._cert_files)
        return self._cert_files

    def api_unreachable(self) -> None:
        """A reconcile found the API server unreachable: watch for it to come back."""
        if self.recovery is None or self.recovery.done():
            self.recovery = asyncio.create_task(self._await_recovery(),
                                                name="api-recovery-probe")

    async def _await_recovery(self) -> None:
        assert self.api is not None
        while not await self.api.reachable():
            await asyncio.sleep(RECOVERY_PROBE_SECONDS)
        woken = self.queue.retry_now() if self.queue is not None else 0
        logger.info("API server reachable again; retrying %d waiting InferenceServices now",
                    woken)

    def enqueue_all(self) -> None:
        """Resync everything (config or dependency change), behind any pending real change."""
        if self.queue is not None:
            for key in self.cache.isvc_keys():
                self.queue.add(key, urgent=False)


def _forget_isvc(runtime: Runtime, key: IsvcKey) -> None:
    runtime.cache.drop_isvc(key)
    if runtime.queue is not None:
        runtime.queue.forget(key)
    if runtime.reconciler is not None:
        runtime.reconciler.forget(key)


def _report_poison(runtime: Runtime, report: PoisonReport) -> None:
    task = asyncio.get_running_loop().create_task(poison.report(runtime.api, report))
    runtime.reporting.add(task)
    task.add_done_callback(runtime.reporting.discard)


def _isvc_event(runtime: Runtime, type: str | None, obj: dict[str, Any]) -> None:
    """An InferenceService from the informer: cache it, and queue it when its input changed."""
    meta = obj.get("metadata", {})
    key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
    if type == "DELETED":
        _forget_isvc(runtime, key)
        return
    report = poison.poisoned(obj)
    if report is None:
        try:
            _take_isvc(runtime, type, obj, key)
            return
        except RecursionError:
            report = poison.record_unprocessable(obj)
    # Never reconcile a spec we could not read whole: stop handling it until it is fixed.
    _forget_isvc(runtime, key)
    _report_poison(runtime, report)


def _take_isvc(runtime: Runtime, type: str | None, obj: dict[str, Any], key: IsvcKey) -> None:
    if runtime.cache.is_current(obj):
        return  # the same version again: nothing new
    previous = runtime.cache.get_isvc(key)
    runtime.cache.put_isvc(obj)
    # Our own status write comes back as an event; only spec/metadata changes matter.
    if previous is not None and _same_input(previous, obj):
        return
    if runtime.queue is not None:
        # type None is a listing (the start, or a relist after an outage): a resync, not
        # news, unless the spec in it was never handled (created or changed while the
        # operator was down or starting), which goes before the resync of the rest.
        runtime.queue.add(key, urgent=type is not None or _unobserved(obj))


def _unobserved(obj: dict[str, Any]) -> bool:
    """True when the status does not yet reflect the object's current generation."""
    status = obj.get("status") or {}
    return bool(status.get("observedGeneration") != obj.get("metadata", {}).get("generation"))


def _child_event(runtime: Runtime, type: str | None, obj: dict[str, Any]) -> None:
    """A labelled child from an informer: cache it under its InferenceService, queue that.

    Poison is checked first, so that one without an owner is reported too."""
    report = poison.poisoned(obj)
    if report is None:
        if controller_owner(obj) is None:
            return  # carries our label but is not ours to manage
        try:
            _take_child(runtime, type, obj)
            return
        except RecursionError:
            report = poison.record_unprocessable(obj)
    _report_poison(runtime, report)


def _take_child(runtime: Runtime, type: str | None, obj: dict[str, Any]) -> None:
    if type != "DELETED" and runtime.cache.is_current(obj):
        return  # already known (written back from our own apply, or listed again)
    parent = runtime.cache.put_child(obj, deleted=type == "DELETED")
    if parent is not None and runtime.queue is not None and parent in runtime.cache:
        runtime.queue.add(parent, urgent=type is not None)


def _dependency_setter(runtime: Runtime, attribute: str) -> Any:
    def installed(now: bool) -> None:
        if getattr(runtime.dependencies, attribute) != now:
            setattr(runtime.dependencies, attribute, now)
            logger.info("%s is now %s", attribute.removesuffix("_installed"),
                        "installed" if now else "NOT installed")
            if now:
                runtime.enqueue_all()
    return installed


async def _start_informers(runtime: Runtime) -> None:
    """Children first, then InferenceServices: every existing child is in the cache before
    the first reconcile, so a restart re-applies nothing. Knative and Istio missing shows up
    here as a type that is not served."""
    api = runtime.api
    assert api is not None
    children = (("v1", "Service", None),
                (c.KNATIVE_API_VERSION, "Service", "knative_installed"),
                (c.ISTIO_API_VERSION, "VirtualService", "istio_installed"))
    for api_version, kind, dependency in children:
        def handle(type: str | None, obj: dict[str, Any]) -> None:
            _child_event(runtime, type, obj)

        def known(api_version: str = api_version, kind: str = kind) -> Any:
            return runtime.cache.children_of(api_version, kind)

        informer = Informer(api, api_version, kind, handle, known=known,
                            label_selector=c.ISVC_LABEL,
                            on_installed=_dependency_setter(runtime, dependency)
                            if dependency else None)
        runtime.informers.append(informer)
        informer.start()
    await asyncio.gather(*(i.synced.wait() for i in runtime.informers))
    # Every existing child is in the cache: reconciling cannot re-apply one that exists.
    if runtime.queue is not None:
        runtime.queue.start()

    def handle_isvc(type: str | None, obj: dict[str, Any]) -> None:
        _isvc_event(runtime, type, obj)

    isvcs = Informer(api, c.API_VERSION, c.KIND, handle_isvc, known=runtime.cache.isvcs)
    runtime.informers.append(isvcs)
    isvcs.start()
    await isvcs.synced.wait()
    deps = runtime.dependencies
    logger.info("dependencies: knative serving %s, istio %s",
                "installed" if deps.knative_installed else "NOT installed",
                "installed" if deps.istio_installed else "NOT installed")


async def _load_config(runtime: Runtime) -> None:
    """The config in force at start: the persisted last good one, updated from the user's."""
    assert runtime.api is not None
    namespace = runtime.options.namespace
    try:
        runtime.config.restore(await runtime.api.get("v1", "ConfigMap",
                                                     LAST_GOOD_CONFIGMAP_NAME, namespace))
    except KubeError as exc:
        logger.error("cannot read %s/%s: %s", namespace, LAST_GOOD_CONFIGMAP_NAME, exc)
    fallback = "the last good config" if runtime.config.persisted else "the built-in defaults"
    try:
        configmap = await runtime.api.get("v1", "ConfigMap", CONFIGMAP_NAME, namespace)
    except KubeError as exc:
        logger.error("cannot read %s/%s: %s; using %s", namespace, CONFIGMAP_NAME, exc,
                     fallback)
        return
    if configmap is None:
        message = f"{namespace}/{CONFIGMAP_NAME} not found; using {fallback}"
        logger.warning("%s", message)
        await runtime.api.post_event(_configmap_reference(namespace), "Warning",
                                     "ConfigMapMissing", message)
    else:
        await _take_config(runtime, configmap)
    await _persist_config(runtime)


def _configmap_reference(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP_NAME, "namespace": namespace}}


async def _take_config(runtime: Runtime, configmap: dict[str, Any]) -> None:
    changed, problems = runtime.config.update(configmap)
    if problems and runtime.api is not None:
        message = "; ".join(str(p) for p in problems)
        await runtime.api.post_event(configmap, "Warning", "InvalidConfig", message)
    if changed:
        logger.info("operator config changed; reconciling every InferenceService")
        await _persist_config(runtime)
        runtime.enqueue_all()


async def _persist_config(runtime: Runtime) -> None:
    """Write the config in force to the last-good ConfigMap when it holds something else."""
    wanted = runtime.config.to_persist(runtime.options.namespace)
    if wanted is None or runtime.api is None:
        return
    config = runtime.config.current
    try:
        await runtime.api.apply(wanted)
    except KubeError as exc:
        logger.error("could not persist the config in force to %s/%s: %s; a restart while "
                     "%s is broken would fall back to %s", runtime.options.namespace,
                     LAST_GOOD_CONFIGMAP_NAME, exc, CONFIGMAP_NAME,
                     "the previous last good config" if runtime.config.persisted
                     else "the built-in defaults")
        return
    runtime.config.persisted_as(config)


async def _start_webhooks(runtime: Runtime) -> None:
    options, api = runtime.options, runtime.api
    assert api is not None
    if options.webhook_mode == "off":
        return
    for stale in certificates.remove_stale_directories():
        logger.info("removed %s, left by an operator that was killed", stale)
    if options.webhook_mode == "local":
        certificate = certificates.loopback_certificate(options.webhook_host)
        runtime.temporary.append(certificate.cert_file.parent)
        base = f"https://{options.webhook_host}:{options.webhook_port}"

        def client_config(path: str) -> dict[str, Any]:
            return registration.url_client_config(base, path, certificate.ca_bundle)
    else:
        certificate = await _cluster_certificate(runtime)
        client_config = _service_client_config(options.namespace, certificate.ca_bundle)

    runtime.server = AdmissionServer(api, runtime.config.get, certificate,
                                     options.webhook_host, options.webhook_port)
    await runtime.server.start()
    # Registering after the server is up means the apiserver never calls a dead endpoint.
    await _register_webhooks(runtime, client_config)
    if options.webhook_mode == "cluster":
        watcher = _reload_mounted_certificates if options.cert_dir else _renew_certificates
        runtime.renewal = asyncio.create_task(watcher(runtime),
                                              name="webhook-certificate-renewal")


async def _register_webhooks(runtime: Runtime, client_config: Any) -> None:
    api, options = runtime.api, runtime.options
    assert api is not None
    await api.apply(registration.mutating_configuration(client_config, options.namespace))
    await api.apply(registration.validating_configuration(client_config))
    logger.info("webhook configurations registered (%s mode)", options.webhook_mode)


def _service_client_config(namespace: str, bundle: bytes) -> Any:
    def client_config(path: str) -> dict[str, Any]:
        return registration.service_client_config(certificates.SERVICE_NAME, namespace, path,
                                                  bundle)
    return client_config


async def _reload_mounted_certificates(runtime: Runtime) -> None:
    """cert-manager rotates the mounted files in place: serve the new ones when they change."""
    options = runtime.options
    assert options.cert_dir is not None
    directory = Path(options.cert_dir)
    # The mounted files change in place, so remember the content that is being served.
    served_pem = certificates.from_directory(directory).cert_pem
    while True:
        await asyncio.sleep(MOUNTED_CERTIFICATE_CHECK_SECONDS)
        try:
            current = certificates.from_directory(directory)
            if current.cert_pem == served_pem:
                continue
            served_pem = current.cert_pem
            if runtime.server is not None:
                runtime.server.use_certificate(current)
            await _register_webhooks(
                runtime, _service_client_config(options.namespace, current.ca_bundle))
            logger.info("reloaded the webhook certificate from %s", directory)
        except (KubeError, OSError, ssl.SSLError) as exc:
            logger.error("webhook certificate reload failed: %s", exc)


async def _renew_certificates(runtime: Runtime) -> None:
    """Renew the self-managed certificate before it expires and keep the caBundle current.

    Also picks up a Secret renewed by someone else (another replica, an admin deleting it),
    so the served certificate and the registered caBundle always match the Secret.
    """
    options = runtime.options
    while True:
        await asyncio.sleep(CERTIFICATE_CHECK_SECONDS)
        try:
            secret = await _current_secret(runtime)
            served = runtime.server.certificate if runtime.server is not None else None
            if served is not None and certificates.secret_matches(secret, served):
                continue
            certificate = certificates.from_secret(secret, runtime.cert_files)
            if runtime.server is not None:
                runtime.server.use_certificate(certificate)
            await _register_webhooks(
                runtime, _service_client_config(options.namespace, certificate.ca_bundle))
        except (KubeError, OSError) as exc:
            logger.error("webhook certificate check failed: %s", exc)


async def _cluster_certificate(runtime: Runtime) -> certificates.ServingCertificate:
    options = runtime.options
    if options.cert_dir:
        return certificates.from_directory(Path(options.cert_dir))
    return certificates.from_secret(await _current_secret(runtime), runtime.cert_files)


async def _current_secret(runtime: Runtime) -> dict[str, Any]:
    """The certificate Secret, issued anew when it is missing, incomplete or expiring."""
    options, api = runtime.options, runtime.api
    assert api is not None
    secret = await api.get("v1", "Secret", certificates.SECRET_NAME, options.namespace)
    if secret is None or certificates.secret_needs_renewal(
            secret, datetime.datetime.now(datetime.UTC)):
        secret = await api.apply(certificates.new_secret(certificates.SERVICE_NAME,
                                                         options.namespace))
        logger.info("issued a new webhook serving certificate into secret %s/%s",
                    options.namespace, certificates.SECRET_NAME)
    return secret


async def _stop_webhooks(runtime: Runtime) -> None:
    api = runtime.api
    if runtime.renewal is not None:
        runtime.renewal.cancel()
    if runtime.options.webhook_mode == "local" and api is not None:
        # Unregister before the server stops: with failurePolicy Fail a registration that
        # points at a dead loopback port would block every later InferenceService write.
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            try:
                await api.delete("admissionregistration.k8s.io/v1", kind,
                                 registration.CONFIGURATION_NAME)
            except KubeError as exc:
                logger.warning("could not remove %s: %s", kind, exc)
    if runtime.server is not None:
        await runtime.server.stop()
    for directory in runtime.temporary:
        shutil.rmtree(directory, ignore_errors=True)
    runtime.temporary.clear()


def build_registry(runtime: Runtime) -> kopf.OperatorRegistry:
    """Register every handler on a fresh registry bound to ``runtime``."""
    registry = kopf.OperatorRegistry()
    # Before any watch starts: one deeply nested object must not end the process.
    poison.install_tolerant_decoding()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # kopf would otherwise log in through the official `kubernetes` client when it is
        # installed, which costs ~50 MiB of memory for nothing: read the kubeconfig directly.
        info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs)
        return info or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # no Event writes for log lines
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = 60
        settings.networking.error_backoffs = KOPF_ERROR_BACKOFFS
        # InferenceServices and their children are watched by our own informers (see
        # informer.py); kopf watches only our ConfigMap, filtered on the server, and the CRDs.
        settings.watching.field_selectors["", "v1", "configmaps"] = (
            f"metadata.name={CONFIGMAP_NAME},metadata.namespace={runtime.options.namespace}")
        runtime.api = KubeApi()
        await _load_config(runtime)
        runtime.reconciler = Reconciler(runtime.api, runtime.cache, runtime.config.get,
                                        runtime.dependencies)
        runtime.queue = WorkQueue(runtime.reconciler.reconcile, workers=runtime.options.workers,
                                  expected=(ReconcileFailed, KubeError),
                                  on_transient=runtime.api_unreachable)
        # The informers start the work queue as soon as every child is known. The webhooks
        # come after the listing on purpose: served first (measured at 5000 models), they let
        # new InferenceServices in that then waited for the whole listing (9.6 s); served
        # after it, a new one is handled in ~1-2 s, and admission is down for the listing.
        await _start_informers(runtime)
        await _start_webhooks(runtime)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        if runtime.recovery is not None:
            runtime.recovery.cancel()
        for informer in runtime.informers:
            await informer.stop()
        if runtime.queue is not None:
            await runtime.queue.stop()
        await _stop_webhooks(runtime)
        if runtime.api is not None:
            await runtime.api.close()

    # Only our ConfigMap reaches this handler: the watch has a server-side field selector.
    @kopf.on.event("", "v1", "configmaps", registry=registry)
    async def config_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        if type == "DELETED":
            message = (f"{runtime.options.namespace}/{CONFIGMAP_NAME} was deleted; keeping the "
                       f"last good config (also across restarts, from "
                       f"{LAST_GOOD_CONFIGMAP_NAME})")
            logger.error("%s", message)
            runtime.config.update(None)
            if runtime.api is not None:
                await runtime.api.post_event(dict(body), "Warning", "ConfigMapDeleted", message)
            return
        await _take_config(runtime, dict(body))

    def _is_dependency_crd(**kwargs: Any) -> bool:
        return kwargs["name"] in {KNATIVE_CRD, ISTIO_CRD}

    @kopf.on.event("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                   when=_is_dependency_crd, registry=registry)
    async def dependency_crd_event(type: str | None, name: str, **_: Any) -> None:
        installed = type != "DELETED"
        attribute = "knative_installed" if name == KNATIVE_CRD else "istio_installed"
        if getattr(runtime.dependencies, attribute) != installed:
            setattr(runtime.dependencies, attribute, installed)
            logger.info("%s is now %s", name, "installed" if installed else "gone")
            runtime.enqueue_all()
        for informer in runtime.informers:
            informer.recheck()  # start (or stop) watching the type without waiting

    return registry


def _same_input(previous: dict[str, Any], current: dict[str, Any]) -> bool:
    """True when only the status (or server bookkeeping) changed between two versions."""
    def essence(obj: dict[str, Any]) -> tuple[Any, ...]:
        meta = obj.get("metadata", {})
        return (obj.get("spec"), meta.get("generation"), meta.get("labels"),
                meta.get("annotations"), meta.get("deletionTimestamp"), meta.get("uid"))
    if essence(previous) != essence(current):
        return False
    # A status someone else wrote (or a stale one) still needs our status to win back.
    return previous.get("status") == current.get("status")


def operator_namespace(explicit: str | None) -> str:
    return explicit or os.environ.get("POD_NAMESPACE") or "kfserving-system"
