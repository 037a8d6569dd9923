"""Probes and metrics over plain HTTP: ``/healthz``, ``/readyz`` and ``/metrics``.

- ``/healthz`` (liveness) answers while the event loop runs. It does not depend on the
  apiserver or on leadership: restarting a replica cures neither.
- ``/readyz`` (readiness) answers 200 only once the cache is primed and the webhooks are
  serving and registered, and turns 503 as soon as the replica is asked to stop, so that it
  leaves the webhook Service's endpoints before it stops answering admission reviews.
  Followers are ready too: every replica serves admission.
- ``/metrics`` is the Prometheus exposition of :class:`OperatorMetrics`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from kfserving_operator.listening import listen
from kfserving_operator.operator.metrics import OperatorMetrics

logger = logging.getLogger(__name__)


@dataclass
class Readiness:
    """What must hold before this replica may receive traffic."""

    cache_primed: bool = False
    webhooks_registered: bool = False
    stopping: bool = False

    def unmet(self) -> list[str]:
        missing = []
        if not self.cache_primed:
            missing.append("cache not primed")
        if not self.webhooks_registered:
            missing.append("webhooks not registered")
        if self.stopping:
            missing.append("stopping")
        return missing

    @property
    def ready(self) -> bool:
        return not self.unmet()


class HealthServer:
    """The probe and metrics endpoint of one replica."""

    def __init__(self, readiness: Readiness, metrics: OperatorMetrics, host: str,
                 port: int) -> None:
        self.readiness = readiness
        self.metrics = metrics
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = await listen(self._runner, self.host, self.port, "probes and metrics")
        logger.info("probes and metrics on http://%s:%d (/healthz, /readyz, /metrics)",
                    self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _readyz(self, _: web.Request) -> web.Response:
        unmet = self.readiness.unmet()
        if unmet:
            return web.Response(status=503, text="not ready: " + ", ".join(unmet))
        return web.Response(text="ok")

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=self.metrics.exposition(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
