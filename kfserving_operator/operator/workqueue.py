"""A deduplicating work queue with per-key exponential backoff, like client-go's.

Watch events only *enqueue* a key; workers reconcile the latest state of that key. So a burst
of events costs one reconcile, one key is never reconciled by two workers at once, and a key
that keeps failing backs off (0.5 s doubling to 5 min) without delaying any other key.

Two priorities: a change someone just made goes before the resync of objects the operator
found at start, so a new InferenceService created right after a restart over thousands of
existing ones is not queued behind all of them.

Every reconcile ends in exactly one log line (its outcome), with one exception: a failure
that says the API server is unreachable (an exception with ``transient = True``) is not the
key's fault. It is retried after at most a few seconds, never counted into a long backoff,
and logged at most once per interval for all keys together, so an outage costs a handful of
lines instead of one per retry. When the API answers again, :meth:`WorkQueue.retry_now` runs
everything that waits on a backoff at once.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from kfserving_operator.operator.log_filters import Throttle

logger = logging.getLogger(__name__)

Key = TypeVar("Key", bound=Hashable)
# Told after every reconcile: (result, seconds it took); result is success, error or requeue.
OutcomeObserver = Callable[[str, float], None]


class Requeue(Exception):
    """Raised by a worker that wants its key again later without it counting as a failure."""

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason or f"requeue in {delay}s")
        self.delay = delay
        self.reason = reason


class WorkQueue(Generic[Key]):
    """Keys in, one reconcile per key at a time out."""

    def __init__(self, handler: Callable[[Key], Awaitable[str | None]], *, workers: int = 8,
                 base_delay: float = 0.5, max_delay: float = 300.0,
                 expected: tuple[type[Exception], ...] = (),
                 describe: Callable[[Key], str] = str,
                 observe: OutcomeObserver | None = None,
                 transient_max_delay: float = 5.0, transient_log_interval: float = 30.0,
                 on_transient: Callable[[], None] | None = None) -> None:
        self._handler = handler
        self._transient_max_delay = transient_max_delay
        self._on_transient = on_transient
        self._transient_log = Throttle(transient_log_interval)
        self._describe = describe
        self._observe = observe
        self._expected = expected
        self._workers = workers
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._urgent: collections.deque[Key] = collections.deque()
        self._background: collections.deque[Key] = collections.deque()
        self._ready = asyncio.Semaphore(0)  # one release per deque entry
        self._queued: dict[Key, bool] = {}  # key -> urgent?
        # When each waiting key was queued; insertion-ordered, so the first is the oldest.
        self._since: dict[Key, float] = {}
        self._processing: set[Key] = set()
        self._dirty: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.processed = 0

    def add(self, key: Key, *, urgent: bool = True) -> None:
        """Reconcile ``key`` soon; a key already waiting or running is not added twice.

        ``urgent=False`` is for resyncs (the initial listing, a config change): they wait
        behind every urgent key.
        """
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if key in self._processing:
            self._dirty.add(key)
            return
        queued = self._queued.get(key)
        if queued is not None and (queued or not urgent):
            return
        # New, or waiting in the background and now urgent: the background entry goes stale.
        self._queued[key] = urgent
        self._since.setdefault(key, time.monotonic())
        (self._urgent if urgent else self._background).append(key)
        self._ready.release()

    async def _next(self) -> Key:
        while True:
            await self._ready.acquire()
            if self._urgent:
                key = self._urgent.popleft()
                if self._queued.get(key) is True:
                    return key
            else:
                key = self._background.popleft()
                if self._queued.get(key) is False:
                    return key
            # a stale entry: the key was promoted to urgent (or already taken)

    def add_after(self, key: Key, delay: float) -> None:
        """Reconcile ``key`` after ``delay`` seconds (an earlier ``add`` wins)."""
        if key in self._timers or key in self._queued:
            return
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def forget(self, key: Key) -> None:
        """Drop backoff state and pending retries of a key that no longer exists."""
        self._failures.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def backoff(self, key: Key) -> float:
        failures = self._failures.get(key, 0)
        return float(min(self._max_delay, self._base_delay * (2 ** max(0, failures - 1))))

    def pending(self) -> int:
        return len(self._queued) + len(self._processing) + len(self._timers)

    def state(self) -> tuple[int, float]:
        """Keys waiting for a worker, and how long the oldest of them has waited (s)."""
        oldest = next(iter(self._since.values()), None)
        age = time.monotonic() - oldest if oldest is not None else 0.0
        return len(self._queued), age

    async def _work(self) -> None:
        while True:
            key = await self._next()
            del self._queued[key]
            self._since.pop(key, None)
            self._processing.add(key)
            started = time.monotonic()
            result = "error"
            # Exactly one log line per reconcile outcome.
            try:
                summary = await self._handler(key)
            except asyncio.CancelledError:
                result = "cancelled"
                raise
            except Requeue as requeue:
                result = "requeue"
                self._failures.pop(key, None)
                logger.info("reconcile %s: %s; again in %.0fs", self._describe(key),
                            requeue.reason or "requeued", requeue.delay)
                self.add_after(key, requeue.delay)
            except Exception as exc:
                self._failures[key] = self._failures.get(key, 0) + 1
                delay = self.backoff(key)
                if getattr(exc, "transient", False):
                    delay = min(delay, self._transient_max_delay)
                    self._log_transient(key, exc)
                    if self._on_transient is not None:
                        self._on_transient()
                elif isinstance(exc, self._expected):
                    # A known failure (the API refused a write): one line, no traceback.
                    logger.error("reconcile %s: failed: %s; retrying in %.1fs",
                                 self._describe(key), exc, delay)
                else:
                    logger.exception("reconcile %s: failed; retrying in %.1fs",
                                     self._describe(key), delay)
                self.add_after(key, delay)
            else:
                result = "success"
                self._failures.pop(key, None)
                logger.info("reconcile %s: %s (%.1f ms)", self._describe(key),
                            summary or "done", (time.monotonic() - started) * 1000)
            finally:
                if self._observe is not None and result != "cancelled":
                    self._observe(result, time.monotonic() - started)
                self.processed += 1
                self._processing.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
            # A reconcile that finds nothing to write never awaits I/O; without this a
            # backlog of them would hold the event loop and starve the watches (a change
            # made during a resync would wait for the whole resync).
            await asyncio.sleep(0)

    def _log_transient(self, key: Key, exc: Exception) -> None:
        suppressed = self._transient_log.allow()
        if suppressed is None:
            return
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        logger.warning("reconcile %s: failed: %s; retrying every few seconds while the API "
                       "server is unreachable%s", self._describe(key), exc, more)

    def retry_now(self) -> int:
        """Run every key that waits on a backoff timer now, with its backoff reset.

        For when the API server is reachable again: the failures were its, not the keys'.
        Returns how many keys were woken.
        """
        waiting = list(self._timers)
        for key in waiting:
            self.add(key)
        self._failures.clear()
        self._transient_log.reset()
        return len(waiting)

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._work(), name=f"reconcile-worker-{i}")
                           for i in range(self._workers)]

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    async def stop(self) -> None:
        """Stop the workers and forget every waiting key, retry and backoff.

        A stopped queue starts empty again: whoever starts it resyncs (a new leader
        reconciles everything anyway).
        """
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._urgent.clear()
        self._background.clear()
        self._ready = asyncio.Semaphore(0)
        self._queued.clear()
        self._since.clear()
        self._dirty.clear()
        self._failures.clear()
