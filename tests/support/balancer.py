"""A tiny loopback TCP balancer: the test's stand-in for a Service in front of the replicas.

In a cluster, the webhook Service's endpoints are the replicas whose readiness probe passes,
and kube-proxy spreads new connections over them at the TCP level (TLS passes through). This
does the same on loopback: it polls every backend's ``/readyz``, sends each new connection to
the next ready backend, and pipes bytes both ways. The apiserver is told the balancer's URL,
so two operator processes can share one webhook configuration the way two pods share one
Service. Connections that find no ready backend are counted and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import urllib.error
import urllib.request
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

READY_POLL_SECONDS = 0.05


@dataclass
class Backend:
    name: str
    port: int
    health_port: int
    ready: bool = False
    connections: int = 0


@dataclass
class LoopbackBalancer:
    """Start with :meth:`start`; add and remove backends while it runs."""

    backends: dict[str, Backend] = field(default_factory=dict)
    port: int = 0
    refused: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None
    _rotation: Any = None
    _poller: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, port: int, health_port: int) -> None:
        with self._lock:
            self.backends[name] = Backend(name, port, health_port)

    def remove(self, name: str) -> None:
        with self._lock:
            self.backends.pop(name, None)

    def ready_names(self) -> list[str]:
        with self._lock:
            return sorted(b.name for b in self.backends.values() if b.ready)

    def start(self) -> None:
        started: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True,
                                        name="loopback-balancer")
        self._thread.start()
        started.result(timeout=10)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    # -- inside the balancer's thread ---------------------------------------------------------

    def _run(self, started: Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._rotation = itertools.count()
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port))
            self.port = self._server.sockets[0].getsockname()[1]
            self._poller = loop.create_task(self._poll_readiness())
            started.set_result(None)
            loop.run_forever()
        except BaseException as exc:  # report start-up failures to the caller
            if not started.done():
                started.set_exception(exc)
        finally:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    async def _poll_readiness(self) -> None:
        while True:
            with self._lock:
                backends = list(self.backends.values())
            results = await asyncio.gather(
                *(asyncio.to_thread(_is_ready, b.health_port) for b in backends))
            with self._lock:
                for backend, ready in zip(backends, results, strict=True):
                    backend.ready = ready
            await asyncio.sleep(READY_POLL_SECONDS)

    def _pick(self) -> Backend | None:
        with self._lock:
            ready = sorted((b for b in self.backends.values() if b.ready),
                           key=lambda b: b.name)
            if not ready:
                return None
            backend = ready[next(self._rotation) % len(ready)]
            backend.connections += 1
            return backend

    async def _handle(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        backend = self._pick()
        if backend is None:
            self.refused += 1
            writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", backend.port)
        except OSError:
            self.refused += 1
            writer.close()
            return
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.close()


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _is_ready(health_port: int) -> bool:
    try:
        with _DIRECT.open(f"http://127.0.0.1:{health_port}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
