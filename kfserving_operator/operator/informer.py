"""List, then watch from the list's resourceVersion: the operator's own informer.

InferenceServices and their children are the operator's high-volume types: 5000 models are
20 000 objects. kopf would feed each of them, at every start, through its per-event
machinery (per-object state, diff base, progress, a worker task per object), and every new
event would queue behind that initial listing. Here the initial listing is one paged LIST
decoded straight into dicts; the watch then starts from that LIST's resourceVersion, so a
change made while the listing is processed is not lost and is not delivered twice.

After a 410 Gone (the version was compacted away) the informer lists again and reports
every object it knew that is no longer there as deleted: no deletion is missed. Transport
errors are retried with a short, bounded backoff, logged once per outage. An object nested
too deeply to decode arrives pruned and recorded (``k8s/decoding.py``); the handler skips and
reports it, as it does for kopf's watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from kfserving_operator.k8s.api import KubeApi, KubeError, ResourceNotInstalled, WatchExpired

logger = logging.getLogger(__name__)

# type None is an object of a (re)list; "ADDED", "MODIFIED", "DELETED" come from the watch.
EventHandler = Callable[[str | None, dict[str, Any]], None]
ObjectKey = tuple[str, str]  # (namespace, name)

WATCH_TIMEOUT_SECONDS = 300
RETRY_MIN_SECONDS = 0.5
# Bounded low: an informer that waits out a long backoff after an outage delays every event
# of its type by that much (a new InferenceService waited 3.7 s with 5 s). One failed
# connection per informer per second while the API server is away costs nothing.
RETRY_MAX_SECONDS = 1.0
# After an unexpected error (a bug): slow enough that its traceback cannot flood the log.
AFTER_BUG_SECONDS = 10.0
# While the resource type is not served (Knative, Istio or Gateway API not installed): an
# informer told of the type's CRD by events (``recheck()``) does not look on its own; after a
# wake that still finds the type missing (the CRD is not served yet), it looks again after
# these delays and then waits for the next wake. One that hears of no CRD (a namespace-scoped
# operator) looks every ``NOT_INSTALLED_POLL_SECONDS``.
AFTER_WAKE_RECHECKS = (1.0, 2.0, 4.0, 8.0)
NOT_INSTALLED_POLL_SECONDS = 60.0


class Informer:
    """Keeps one resource type flowing into ``handler``: list once, then watch for good."""

    def __init__(self, api: KubeApi, api_version: str, kind: str, handler: EventHandler, *,
                 known: Callable[[], Iterable[dict[str, Any]]],
                 namespace: str | None = None,
                 label_selector: str | None = None,
                 on_installed: Callable[[bool], None] | None = None,
                 missing_poll: float | None = NOT_INSTALLED_POLL_SECONDS) -> None:
        self.api_version = api_version
        self.kind = kind
        self._api = api
        self._handler = handler
        # What the handler holds of this type, for finding deletions missed across a relist.
        self._known = known
        self._namespace = namespace  # None: every namespace
        self._selector = label_selector
        self._on_installed = on_installed
        # While the type is not served, look again this often; None: only when woken.
        self._missing_poll = missing_poll
        self._after_wake: list[float] = []  # the rechecks left after the last wake
        self.synced = asyncio.Event()  # set after the first complete listing (or "not served")
        self.installed: bool | None = None
        self._task: asyncio.Task[None] | None = None
        self._version: str | None = None  # where the watch resumes; None: list first
        self._wake = asyncio.Event()
        self._delay = RETRY_MIN_SECONDS  # the next retry's wait, doubled per failure
        self._failing_since: float | None = None  # when the current outage began

    @property
    def what(self) -> str:
        where = f" in {self._namespace}" if self._namespace else ""
        return f"{self.api_version} {self.kind}{where}"

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer-{self.what}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def recheck(self) -> None:
        """Look again now (the CRD of a type that was not served has appeared)."""
        self._after_wake = list(AFTER_WAKE_RECHECKS)
        self._wake.set()

    def _set_installed(self, installed: bool) -> None:
        if self.installed != installed:
            self.installed = installed
            if self._on_installed is not None:
                self._on_installed(installed)

    async def _pause(self, seconds: float | None) -> None:
        """Wait ``seconds`` (None: for good), or until :meth:`recheck`."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _missing_delay(self) -> float | None:
        """How long to wait before looking again for a type that is not served."""
        if self._after_wake:
            return self._after_wake.pop(0)
        return self._missing_poll

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                if self._version is None:
                    self._version = await self._relist()
                await self._watch()
            except WatchExpired:
                logger.info("%s watch expired; listing again", self.what)
                self._version = None
                continue
            except ResourceNotInstalled:
                self._set_installed(False)
                self.synced.set()
                self._version = None
                await self._pause(self._missing_delay())
                continue
            except KubeError as exc:
                # One line when an outage starts and one when it ends, not one per retry.
                if self._failing_since is None:
                    self._failing_since = loop.time()
                    logger.warning("%s list/watch failed: %s; retrying", self.what, exc)
                await self._pause(self._delay)
                self._delay = min(RETRY_MAX_SECONDS, self._delay * 2)
                continue
            except Exception:
                # A bug, not an outage: say so in full, but keep the type flowing (a dead
                # informer would leave the cache stale for good). List again to be safe.
                logger.exception("%s informer failed; listing again in %.1fs", self.what,
                                 AFTER_BUG_SECONDS)
                self._version = None
                await self._pause(AFTER_BUG_SECONDS)
                continue

    def _succeeded(self) -> None:
        """The API answered: end the outage (its one closing line) and the backoff."""
        if self._failing_since is not None:
            logger.info("%s list/watch recovered after %.1fs", self.what,
                        asyncio.get_running_loop().time() - self._failing_since)
            self._failing_since = None
        self._delay = RETRY_MIN_SECONDS

    async def _relist(self) -> str:
        present: set[ObjectKey] = set()
        count = 0
        version = ""
        async for page in self._api.list_pages(self.api_version, self.kind, self._selector,
                                                 namespace=self._namespace):
            self._set_installed(True)
            for obj in page.items:
                meta = obj.get("metadata", {})
                present.add((str(meta.get("namespace", "")), str(meta.get("name", ""))))
                self._handler(None, obj)
            count += len(page.items)
            version = page.resource_version
            del page  # the next page is decoded only after this one is gone
        if self.synced.is_set():
            # A relist after an expired watch or an outage: whatever we held that the list
            # no longer has was deleted meanwhile.
            for obj in list(self._known()):
                meta = obj.get("metadata", {})
                namespace = str(meta.get("namespace", ""))
                if self._namespace is not None and namespace != self._namespace:
                    continue  # another informer's
                if (namespace, str(meta.get("name", ""))) not in present:
                    self._handler("DELETED", obj)
        self.synced.set()
        self._succeeded()
        logger.info("listed %d %s (resourceVersion %s)", count, self.what, version)
        return version

    async def _watch(self) -> None:
        """Deliver events until the server closes the stream, keeping track of the version
        reached, so a reconnect neither repeats nor misses an event."""
        assert self._version is not None
        async for event_type, obj, version in self._api.watch_objects(
                self.api_version, self.kind, self._version, self._selector,
                WATCH_TIMEOUT_SECONDS, namespace=self._namespace):
            self._version = version
            if self._failing_since is not None:
                self._succeeded()
            if obj is not None:  # None: a bookmark, only the version moves on
                self._handler(event_type, obj)
