"""kopf's handlers and settings, bound to one :class:`~.runtime.Runtime`.

kopf watches the low-volume types only (our ConfigMap, the Knative/Istio/Gateway API CRDs,
TrainedModels), with ``@kopf.on.event`` handlers: they store nothing on the watched objects,
so no bookkeeping annotations or finalizers are written. InferenceServices and their
children come from the operator's own informers (``events.py``). The process's life
(start-up order, leader election, shutdown) is in ``main.py``.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import aiohttp
import kopf

from kfserving_operator.api import constants as c
from kfserving_operator.api.config import CONFIGMAP_NAME, LAST_GOOD_CONFIGMAP_NAME
from kfserving_operator.k8s.instrumentation import aiohttp_trace
from kfserving_operator.operator import poison
from kfserving_operator.operator.config_loop import take_config
from kfserving_operator.operator.conversion import register_conversion_guard
from kfserving_operator.operator.metrics import OperatorMetrics
from kfserving_operator.operator.runtime import Runtime
from kfserving_operator.operator.trainedmodels import register_trained_models

logger = logging.getLogger("kfserving_operator")


KNATIVE_CRD = f"services.{c.KNATIVE_GROUP}"


ISTIO_CRD = f"virtualservices.{c.ISTIO_GROUP}"
GATEWAY_API_CRD = f"httproutes.{c.GATEWAY_GROUP}"
DEPENDENCY_CRDS = {KNATIVE_CRD: "knative_installed", ISTIO_CRD: "istio_installed",
                   GATEWAY_API_CRD: "gateway_api_installed"}


# kopf's retries of a failed request (its watches and listings); the longest one bounds how
# long a watch stays away after the API server is back (kopf's default goes up to 21 s).
KOPF_ERROR_BACKOFFS = (0.5, 1.0, 1.0, 2.0, 2.0, 2.0)


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
        await take_config(runtime, dict(body))

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
        # Start (or stop) watching the type without waiting: its informer does not poll a
        # type it found missing, this event is what it waits for.
        group = name.partition(".")[2]
        for informer in runtime.informers:
            if informer.api_version.partition("/")[0] == group:
                informer.recheck()

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

