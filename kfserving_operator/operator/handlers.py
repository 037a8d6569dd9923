"""kopf wiring and the start-up steps: informers feed the cache and the work queue.

The process's life (start-up order, leader election, shutdown) is in ``main.py``; this module
holds the steps it calls and the handlers. InferenceServices and their children come from the
operator's own informers (``informer.py``: one paged LIST, then a watch from its
resourceVersion), not from kopf: at thousands of models kopf's per-event machinery for the
initial listing cost more CPU and memory than everything else, and held every new event behind
it. kopf watches the low-volume types (our ConfigMap, the Knative/Istio CRDs, TrainedModels)
with ``@kopf.on.event`` handlers only. Neither stores anything on the watched objects, so no
bookkeeping annotations or finalizers are written, and an operator restart over existing
objects writes nothing at all. Reconciliation is level-based: an event only marks its
InferenceService as needing a reconcile (see ``workqueue.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
import os
import shutil
import socket
import ssl
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import kopf

from kfserving_operator.api import constants as c
from kfserving_operator.api.config import CONFIGMAP_NAME, LAST_GOOD_CONFIGMAP_NAME
from kfserving_operator.k8s.api import KubeApi, KubeError
from kfserving_operator.k8s.decoding import PoisonReport
from kfserving_operator.k8s.instrumentation import aiohttp_trace
from kfserving_operator.k8s.leader import LeaderElector, LeaseTiming
from kfserving_operator.operator import poison
from kfserving_operator.operator.cache import IsvcKey, ObjectCache, controller_owner
from kfserving_operator.operator.config_store import ConfigStore
from kfserving_operator.operator.conversion import (
    ConversionRegistration,
    register_conversion_guard,
)
from kfserving_operator.operator.health import BindError, Readiness
from kfserving_operator.operator.informer import Informer
from kfserving_operator.operator.metrics import OperatorMetrics
from kfserving_operator.operator.raw_reads import RAW_CHILD_TYPES
from kfserving_operator.operator.reconciler import (
    Dependencies,
    ReconcileFailed,
    Reconciler,
    is_subset,
)
from kfserving_operator.operator.trainedmodels import TrainedModelWorkers, register_trained_models
from kfserving_operator.operator.workqueue import WorkQueue
from kfserving_operator.webhooks import certificates, legacy_registration, registration
from kfserving_operator.webhooks.server import AdmissionServer

logger = logging.getLogger("kfserving_operator")

KNATIVE_CRD = f"services.{c.KNATIVE_GROUP}"
ISTIO_CRD = f"virtualservices.{c.ISTIO_GROUP}"
GATEWAY_API_CRD = f"httproutes.{c.GATEWAY_GROUP}"
DEPENDENCY_CRDS = {KNATIVE_CRD: "knative_installed", ISTIO_CRD: "istio_installed",
                   GATEWAY_API_CRD: "gateway_api_installed"}
# How often certificates are checked; the environment overrides it (tests use seconds).
CERTIFICATE_CHECK_SECONDS = float(os.environ.get("KFSERVING_CERT_CHECK_SECONDS", 3600))
MOUNTED_CERTIFICATE_CHECK_SECONDS = float(os.environ.get("KFSERVING_CERT_CHECK_SECONDS", 60))
# While the API server is unreachable, how often to look whether it is back.
RECOVERY_PROBE_SECONDS = 1.0
# kopf's retries of a failed request (its watches and listings); the longest one bounds how
# long a watch stays away after the API server is back (kopf's default goes up to 21 s).
KOPF_ERROR_BACKOFFS = (0.5, 1.0, 1.0, 2.0, 2.0, 2.0)


LEASE_NAME = "kfserving-controller-manager-leader"


class StartupError(Exception):
    """The operator cannot start; the message is the one line the user sees."""


def default_identity() -> str:
    """client-go's style: the host (the pod's name in a cluster) and a unique suffix."""
    host = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{host}_{uuid.uuid4()}"


@dataclass
class OperatorOptions:
    """How this operator process runs."""

    namespace: str
    webhook_mode: str  # "local", "cluster" or "off"
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 9443  # 0: any free port
    # cluster mode: register this base URL instead of the Service (a load balancer in front
    # of the replicas, or an operator outside the cluster).
    webhook_url: str | None = None
    cert_dir: str | None = None
    workers: int = 8
    health_host: str = "127.0.0.1"
    health_port: int = 0
    leader_election: bool = True
    lease_timing: LeaseTiming = field(default_factory=LeaseTiming)
    identity: str = field(default_factory=default_identity)
    # After SIGTERM: not ready at once, then keep answering admission this long.
    drain_seconds: float = 0.0
    # Empty: every namespace. Otherwise only these, with namespaced reads only.
    watch_namespaces: tuple[str, ...] = ()

    def watches(self, namespace: str | None) -> bool:
        return not self.watch_namespaces or namespace in self.watch_namespaces


@dataclass
class Runtime:
    """Everything the handlers share, created at startup."""

    options: OperatorOptions
    cache: ObjectCache = field(default_factory=ObjectCache)
    config: ConfigStore = field(default_factory=ConfigStore)
    dependencies: Dependencies = field(default_factory=Dependencies)
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    readiness: Readiness = field(default_factory=Readiness)
    api: KubeApi | None = None
    queue: WorkQueue[IsvcKey] | None = None
    reconciler: Reconciler | None = None
    elector: LeaderElector | None = None
    server: AdmissionServer | None = None
    renewal: asyncio.Task[None] | None = None
    conversion: ConversionRegistration = field(default_factory=ConversionRegistration)
    trained_models: TrainedModelWorkers | None = None  # started while leading, like queue
    recovery: asyncio.Task[None] | None = None
    # The problems of the ConfigMap in force, not yet reported (only the leader reports):
    # (the object the event is about, the message, the reason).
    config_warning: tuple[dict[str, Any], str, str] | None = None
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
        for informer in self.informers:
            informer.recheck()  # do not wait out a retry delay either
        woken = self.queue.retry_now() if self.queue is not None else 0
        logger.info("API server reachable again; retrying %d waiting InferenceServices now",
                    woken)

    @property
    def leading(self) -> bool:
        """True while this replica may write: it holds the Lease (or election is off)."""
        return self.elector is None or self.elector.is_leader

    @property
    def writer(self) -> KubeApi | None:
        """The API for writes that only the leader makes (events, the last good config)."""
        return self.api if self.leading else None

    def enqueue(self, key: IsvcKey, *, urgent: bool) -> None:
        """Queue a reconcile; followers queue nothing (a new leader resyncs everything)."""
        if self.queue is not None and self.queue.running:
            self.queue.add(key, urgent=urgent)

    def set_dependency(self, attribute: str, installed: bool) -> None:
        """Knative or Istio appeared or went (its CRD's events, or its informer finding the
        type served or not): every InferenceService's status depends on it."""
        if getattr(self.dependencies, attribute) != installed:
            setattr(self.dependencies, attribute, installed)
            logger.info("%s is now %s", attribute.removesuffix("_installed"),
                        "installed" if installed else "NOT installed")
            self.enqueue_all()

    def enqueue_all(self) -> None:
        """Resync everything (config or dependency change), behind any pending real change."""
        for key in self.cache.isvc_keys():
            self.enqueue(key, urgent=False)

    def resync_all(self) -> None:
        """Resync everything when starting to lead. A spec never handled (created or changed
        while no replica led) goes first; the rest is a check that usually writes nothing."""
        for obj in self.cache.isvcs():
            meta = obj.get("metadata", {})
            self.enqueue((str(meta.get("namespace", "")), str(meta.get("name", ""))),
                         urgent=unobserved(obj))


def _forget_isvc(runtime: Runtime, key: IsvcKey) -> None:
    runtime.cache.drop_isvc(key)
    if runtime.queue is not None:
        runtime.queue.forget(key)
    if runtime.reconciler is not None:
        runtime.reconciler.forget(key)


def _report_poison(runtime: Runtime, report: PoisonReport) -> None:
    """Post the report without holding up the informer that found the poison object."""
    task = asyncio.get_running_loop().create_task(poison.report(runtime.writer, report))
    runtime.reporting.add(task)
    task.add_done_callback(runtime.reporting.discard)


def _isvc_event(runtime: Runtime, type: str | None, obj: dict[str, Any]) -> None:
    """An InferenceService from the informer: cache it, and queue it when its input changed."""
    meta = obj.get("metadata", {})
    key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
    if type == "DELETED":
        _forget_isvc(runtime, key)
        _trained_model_parent_event(runtime, type, obj)
        return
    report = poison.poisoned(obj)
    if report is None:
        try:
            _take_isvc(runtime, type, obj, key)
            _trained_model_parent_event(runtime, type, obj)
            return
        except RecursionError:
            report = poison.record_unprocessable(obj)
    # Never reconcile a spec we could not read whole: stop handling it until it is fixed.
    _forget_isvc(runtime, key)
    _report_poison(runtime, report)


def _trained_model_parent_event(runtime: Runtime, type: str | None,
                                obj: dict[str, Any]) -> None:
    """TrainedModels hang off InferenceServices: their controller hears of every change."""
    if runtime.trained_models is not None:
        runtime.trained_models.parent_event(type, obj)


def _take_isvc(runtime: Runtime, type: str | None, obj: dict[str, Any], key: IsvcKey) -> None:
    if runtime.cache.is_current(obj):
        return  # the same version again: nothing new
    previous = runtime.cache.get_isvc(key)
    runtime.cache.put_isvc(obj)
    # Our own status write comes back as an event; only spec/metadata changes matter.
    if previous is not None and _same_input(previous, obj):
        return
    # type None is a listing (the start, or a relist after an outage): a resync, not news,
    # unless the spec in it was never handled (created or changed while the operator was down
    # or starting), which goes before the resync of the rest.
    runtime.enqueue(key, urgent=type is not None or unobserved(obj))


def unobserved(obj: dict[str, Any]) -> bool:
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
    if parent is not None and parent in runtime.cache:
        runtime.enqueue(parent, urgent=type is not None)


async def start_informers(runtime: Runtime) -> None:
    """List every child and InferenceService, then keep watching; returns once all are listed.

    Every existing child is in the cache before the first reconcile (the workers start after
    this), so a restart re-applies nothing. All types are listed at once; each watch starts
    right after its own listing. Knative or Istio missing shows up here as a type that is
    not served. A namespace-scoped operator runs one informer per type and watched namespace.
    """
    api = runtime.api
    assert api is not None
    scopes: tuple[str | None, ...] = runtime.options.watch_namespaces or (None,)
    children = (("v1", "Service", None),
                (c.KNATIVE_API_VERSION, "Service", "knative_installed"),
                (c.ISTIO_API_VERSION, "VirtualService", "istio_installed"),
                *RAW_CHILD_TYPES)

    def handle_child(type: str | None, obj: dict[str, Any]) -> None:
        _child_event(runtime, type, obj)

    def handle_isvc(type: str | None, obj: dict[str, Any]) -> None:
        _isvc_event(runtime, type, obj)

    for scope in scopes:
        for api_version, kind, dependency in children:
            def known(api_version: str = api_version, kind: str = kind) -> Any:
                return runtime.cache.children_of(api_version, kind)

            runtime.informers.append(Informer(
                api, api_version, kind, handle_child, known=known, namespace=scope,
                label_selector=c.ISVC_LABEL,
                on_installed=functools.partial(runtime.set_dependency, dependency)
                if dependency else None))
        runtime.informers.append(Informer(api, c.API_VERSION, c.KIND, handle_isvc,
                                          known=runtime.cache.isvcs, namespace=scope))
    for informer in runtime.informers:
        informer.start()
    await asyncio.gather(*(informer.synced.wait() for informer in runtime.informers))
    deps = runtime.dependencies
    logger.info("listed %d InferenceServices; dependencies: knative serving %s, istio %s",
                len(runtime.cache),
                "installed" if deps.knative_installed else "NOT installed",
                "installed" if deps.istio_installed else "NOT installed")


async def stop_informers(runtime: Runtime) -> None:
    for informer in runtime.informers:
        await informer.stop()
    runtime.informers.clear()
    for task in list(runtime.reporting):
        task.cancel()
    deps = runtime.dependencies
    logger.info("dependencies: knative serving %s, istio %s",
                "installed" if deps.knative_installed else "NOT installed",
                "installed" if deps.istio_installed else "NOT installed")


async def load_config(runtime: Runtime) -> None:
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
        runtime.config_warning = (_configmap_reference(namespace), message, "ConfigMapMissing")
        if runtime.leading:
            await post_config_warning(runtime)
    else:
        await _take_config(runtime, configmap)
    if runtime.leading:
        await persist_config(runtime)


def _configmap_reference(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP_NAME, "namespace": namespace}}


async def _take_config(runtime: Runtime, configmap: dict[str, Any]) -> None:
    changed, problems = runtime.config.update(configmap)
    runtime.config_warning = None
    if problems:
        # Followers write nothing: the warning waits for whoever leads next.
        runtime.config_warning = (configmap, "; ".join(str(p) for p in problems),
                                  "InvalidConfig")
        if runtime.leading:
            await post_config_warning(runtime)
    if changed:
        logger.info("operator config changed; reconciling every InferenceService")
        if runtime.leading:
            await persist_config(runtime)
        runtime.enqueue_all()


async def post_config_warning(runtime: Runtime) -> None:
    """Report the problems of the ConfigMap in force as a Warning event on it (once)."""
    warning, runtime.config_warning = runtime.config_warning, None
    if warning is not None and runtime.api is not None:
        configmap, message, reason = warning
        await runtime.api.post_event(configmap, "Warning", reason, message)


async def persist_config(runtime: Runtime) -> None:
    """Write the config in force to the last-good ConfigMap when it holds something else
    (the leader does this: at start, on a change, and when it takes over)."""
    wanted = runtime.config.to_persist(runtime.options.namespace)
    if wanted is None or runtime.api is None:
        return
    config = runtime.config.current
    owner = await _installation_owner(runtime)
    if owner is not None:
        wanted["metadata"]["ownerReferences"] = [owner]
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


async def start_webhooks(runtime: Runtime) -> None:
    """Serve the webhooks, then register them; readiness follows the registration.

    Raises :class:`StartupError` (one line, no retry loop) when the port is taken, when a
    local run would replace another installation's webhooks, or when registering fails.
    """
    options, api = runtime.options, runtime.api
    assert api is not None
    if options.webhook_mode == "off":
        runtime.readiness.webhooks_registered = True
        return
    for stale in certificates.remove_stale_directories():
        logger.info("removed %s, left by an operator that was killed", stale)
    if options.webhook_mode == "local":
        certificate = certificates.loopback_certificate(options.webhook_host)
        runtime.temporary.append(certificate.cert_file.parent)
    else:
        try:
            certificate = await _cluster_certificate(runtime)
        except (KubeError, OSError) as exc:
            raise StartupError(f"no webhook serving certificate: {exc}") from exc

    runtime.server = AdmissionServer(api, runtime.config.get, certificate,
                                     options.webhook_host, options.webhook_port,
                                     runtime.metrics)
    try:
        await runtime.server.start()
    except BindError as exc:
        runtime.server = None
        raise StartupError(f"{exc}; choose another port with --webhook-port") from exc

    if options.webhook_mode == "local":
        base = f"https://{options.webhook_host}:{runtime.server.port}"
        await _refuse_foreign_registration(runtime, base)

        def client_config(path: str) -> dict[str, Any]:
            return registration.url_client_config(base, path, certificate.ca_bundle)
    else:
        client_config = _cluster_client_config(options, certificate.ca_bundle)
    # Registering after the server is up means the apiserver never calls a dead endpoint.
    try:
        await _register_webhooks(runtime, client_config)
    except KubeError as exc:
        raise StartupError(f"cannot register the webhook configurations: {exc}") from exc
    runtime.readiness.webhooks_registered = True
    if options.webhook_mode == "cluster":
        watcher = _reload_mounted_certificates if options.cert_dir else _renew_certificates
        runtime.renewal = asyncio.create_task(watcher(runtime),
                                              name="webhook-certificate-renewal")


async def _register_webhooks(runtime: Runtime, client_config: Any) -> None:
    """Apply both configurations, unless they already hold exactly this (another replica
    registered them): a replica's start or a certificate pick-up then writes nothing."""
    api, options = runtime.api, runtime.options
    assert api is not None
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
    await runtime.conversion.register(api, client_config)
    logger.info("webhook configurations %s (%s mode)",
                "registered" if wrote else "already registered", options.webhook_mode)


def _cluster_client_config(options: OperatorOptions, bundle: bytes) -> Any:
    """The Service reference, or the URL the replicas are reached at (``--webhook-url``)."""
    def client_config(path: str) -> dict[str, Any]:
        if options.webhook_url:
            return registration.url_client_config(options.webhook_url, path, bundle)
        return registration.service_client_config(certificates.SERVICE_NAME, options.namespace,
                                                  path, bundle)
    return client_config


async def _endpoint_answers(host: str, port: int) -> bool:
    try:
        async with asyncio.timeout(2):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def _refuse_foreign_registration(runtime: Runtime, own_base: str) -> None:
    """A local run never replaces webhooks that someone else's operator serves.

    Another installation's configurations (the Helm chart's, pointing at a Service), or
    those of another local operator that still answers, stop the start-up with one line.
    A leftover of a local operator that was killed (its port answers no more) is replaced.
    """
    api = runtime.api
    assert api is not None
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        try:
            existing = await api.get("admissionregistration.k8s.io/v1", kind,
                                     registration.CONFIGURATION_NAME)
        except KubeError as exc:
            raise StartupError(f"cannot read {kind} {registration.CONFIGURATION_NAME}: "
                               f"{exc}") from exc
        if existing is None:
            continue
        for endpoint in registration.endpoints(existing):
            if endpoint.service is not None:
                raise StartupError(
                    f"{kind} {registration.CONFIGURATION_NAME} already sends admission to "
                    f"Service {endpoint.service} (an operator installed in this cluster); a "
                    "local run would take it over. Uninstall that operator or use a cluster "
                    "of your own")
            url = endpoint.url or ""
            if url.startswith(own_base + "/"):
                continue
            where = urlsplit(url)
            if where.hostname not in registration.LOOPBACK_HOSTS:
                raise StartupError(
                    f"{kind} {registration.CONFIGURATION_NAME} already sends admission to "
                    f"{url}; a local run would take it over. Delete it first if it is stale")
            if where.port and await _endpoint_answers(where.hostname, where.port):
                raise StartupError(
                    f"another local operator serves the webhooks at {url} "
                    f"({kind} {registration.CONFIGURATION_NAME}); stop it first")


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
            await _register_webhooks(runtime,
                                     _cluster_client_config(options, current.ca_bundle))
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
            await _register_webhooks(runtime,
                                     _cluster_client_config(options, certificate.ca_bundle))
        except (KubeError, OSError) as exc:
            logger.error("webhook certificate check failed: %s", exc)


async def _cluster_certificate(runtime: Runtime) -> certificates.ServingCertificate:
    options = runtime.options
    if options.cert_dir:
        return certificates.from_directory(Path(options.cert_dir))
    return certificates.from_secret(await _current_secret(runtime), runtime.cert_files)


async def _installation_owner(runtime: Runtime) -> dict[str, Any] | None:
    """An ownerReference to the installed webhook Service, for what the operator creates in
    its namespace (certificate Secret, last-good config): uninstalling the manifests deletes
    the Service, and the garbage collector then deletes those too. None without the Service
    (`make run`) or when it cannot be read."""
    assert runtime.api is not None
    try:
        service = await runtime.api.get("v1", "Service", certificates.SERVICE_NAME,
                                        runtime.options.namespace)
    except KubeError as exc:
        logger.warning("cannot read the webhook Service to own what the operator creates: %s",
                       exc)
        return None
    if service is None:
        return None
    return {"apiVersion": "v1", "kind": "Service", "name": service["metadata"]["name"],
            "uid": service["metadata"]["uid"]}


async def _current_secret(runtime: Runtime) -> dict[str, Any]:
    """The certificate Secret; only the leader issues or renews it.

    Replicas start together, and two of them issuing at once would each serve a certificate
    of their own CA while only one CA can win the Secret and the ``caBundle``. So a follower
    uses the Secret as long as it is valid and otherwise waits for the leader to issue it.
    """
    options, api = runtime.options, runtime.api
    assert api is not None
    waiting_logged = False
    while True:
        secret = await api.get("v1", "Secret", certificates.SECRET_NAME, options.namespace)
        now = datetime.datetime.now(datetime.UTC)
        if secret is not None and not certificates.secret_needs_renewal(secret, now):
            return secret
        if runtime.leading:
            # Owned by the installed webhook Service, so uninstalling removes it too, unless
            # the installation asks to keep it (KFSERVING_KEEP_CERT_SECRET, the chart's
            # certificate.keepOnUninstall) or there is no such Service (`make run`).
            owner = None
            if os.environ.get("KFSERVING_KEEP_CERT_SECRET", "").lower() not in ("1", "true"):
                owner = await _installation_owner(runtime)
            secret = await api.apply(certificates.new_secret(
                certificates.SERVICE_NAME, options.namespace, previous=secret, owner=owner))
            logger.info("issued a new webhook serving certificate into secret %s/%s",
                        options.namespace, certificates.SECRET_NAME)
            return secret
        if secret is not None and certificates.secret_is_usable(secret, now):
            return secret  # due for renewal, which the leader does
        if not waiting_logged:
            logger.info("waiting for the leader to issue the webhook certificate into %s/%s",
                        options.namespace, certificates.SECRET_NAME)
            waiting_logged = True
        # Look again after a retry period, or at once when this replica wins the Lease.
        if runtime.elector is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.elector.leading.wait(),
                                       options.lease_timing.retry_period)
        else:
            await asyncio.sleep(options.lease_timing.retry_period)


async def unregister_local_webhooks(runtime: Runtime) -> None:
    """Local mode: remove our loopback registration before the server stops.

    With failurePolicy Fail a registration that points at a dead loopback port would block
    every later InferenceService write. Cluster registrations stay: other replicas (or the
    next pod) serve them.
    """
    api = runtime.api
    if (runtime.options.webhook_mode == "local" and api is not None and runtime.server
            and runtime.readiness.webhooks_registered):
        runtime.readiness.webhooks_registered = False
        configurations = [(kind, registration.CONFIGURATION_NAME) for kind in
                          ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")]
        for kind, name in [*configurations, *legacy_registration.LOCAL_CLEANUP]:
            try:
                await api.delete("admissionregistration.k8s.io/v1", kind, name)
            except KubeError as exc:
                logger.warning("could not remove %s: %s", kind, exc)
        try:
            await runtime.conversion.restore_shipped(api)
        except KubeError as exc:
            logger.warning("could not restore the CRD's conversion webhook: %s", exc)


async def stop_webhooks(runtime: Runtime) -> None:
    if runtime.recovery is not None:
        runtime.recovery.cancel()
    if runtime.renewal is not None:
        runtime.renewal.cancel()
    await unregister_local_webhooks(runtime)
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
    async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
        # kopf would otherwise log in through the official `kubernetes` client when it is
        # installed, which costs ~50 MiB of memory for nothing: read the kubeconfig directly.
        info: kopf.ConnectionInfo | None = (kopf.login_with_service_account(**kwargs)
                                            or kopf.login_with_kubeconfig(**kwargs))
        if info is None:
            return None
        return kopf.AiohttpSession(server=info.server, default_namespace=info.default_namespace,
                                   expiration=info.expiration,
                                   aiohttp_session=_counted_session(info, runtime.metrics))

    # Only our ConfigMap reaches this handler: the watch has a server-side field selector.
    @kopf.on.event("", "v1", "configmaps", registry=registry)
    async def config_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        if type == "DELETED":
            message = (f"{runtime.options.namespace}/{CONFIGMAP_NAME} was deleted; keeping the "
                       f"last good config (also across restarts, from "
                       f"{LAST_GOOD_CONFIGMAP_NAME})")
            logger.error("%s", message)
            runtime.config.update(None)
            if runtime.writer is not None:
                await runtime.writer.post_event(dict(body), "Warning", "ConfigMapDeleted",
                                                message)
            return
        await _take_config(runtime, dict(body))

    if runtime.options.watch_namespaces:
        # CRDs are cluster-wide objects: a namespace-scoped operator learns whether Knative
        # and Istio are installed at start only.
        return registry

    def _is_dependency_crd(**kwargs: Any) -> bool:
        return kwargs["name"] in DEPENDENCY_CRDS

    @kopf.on.event("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                   when=_is_dependency_crd, registry=registry)
    async def dependency_crd_event(type: str | None, name: str, **_: Any) -> None:
        runtime.set_dependency(DEPENDENCY_CRDS[name], type != "DELETED")
        for informer in runtime.informers:
            informer.recheck()  # start (or stop) watching the type without waiting

    # TrainedModels (multi-model serving): their own watch, cache and queue; registered last
    # so their startup runs after the one above has created the API client.
    runtime.trained_models = register_trained_models(registry, lambda: runtime.api, runtime.cache,
                                                     runtime.config.get)
    register_conversion_guard(registry, lambda: runtime.api, runtime.conversion)
    return registry


def operator_settings(runtime: Runtime) -> kopf.OperatorSettings:
    """kopf's settings: no Event posting, long watches, a server-side filter."""
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False  # no Event writes for log lines
    if runtime.options.watch_namespaces:
        # No cluster-wide reads: kopf neither lists namespaces nor watches CRDs.
        settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.networking.error_backoffs = KOPF_ERROR_BACKOFFS
    # InferenceServices and their children come from our own informers (informer.py); kopf
    # watches only our ConfigMap (filtered on the server), the CRDs and TrainedModels.
    settings.watching.field_selectors["", "v1", "configmaps"] = (
        f"metadata.name={CONFIGMAP_NAME},metadata.namespace={runtime.options.namespace}")
    return settings


def new_reconciler(runtime: Runtime) -> None:
    """The reconciler and its work queue (started only while leading)."""
    assert runtime.api is not None
    runtime.reconciler = Reconciler(runtime.api, runtime.cache, runtime.config.get,
                                    runtime.dependencies)
    metrics = runtime.metrics

    def observe(result: str, seconds: float) -> None:
        metrics.reconciles.labels(result=result).inc()
        metrics.reconcile_duration.observe(seconds)

    runtime.queue = WorkQueue(runtime.reconciler.reconcile, workers=runtime.options.workers,
                              expected=(ReconcileFailed, KubeError),
                              on_transient=runtime.api_unreachable,
                              describe=lambda key: f"{key[0]}/{key[1]}", observe=observe)
    metrics.watch_queue(runtime.queue.state)
    metrics.watch_ready_counts(runtime.cache.ready_counts)


def _counted_session(info: kopf.ConnectionInfo,
                     metrics: OperatorMetrics) -> aiohttp.ClientSession:
    """kopf's own session (as kopf builds it from a ConnectionInfo), with requests counted."""
    with warnings.catch_warnings():  # kopf deprecates basic auth, but still supports it
        warnings.simplefilter("ignore", DeprecationWarning)
        auth = info.as_aiohttp_basic_auth()
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        auth=auth,
        proxy=info.proxy_url,
        trust_env=info.trust_env,
        trace_configs=[aiohttp_trace(metrics)],
    )


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
