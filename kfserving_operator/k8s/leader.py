"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's semantics.

Every replica runs a :class:`LeaderElector`; the one holding the Lease reconciles, the others
only keep their caches warm and serve admission. The rules are client-go's
(``tools/leaderelection``), so the operator behaves like every other controller an
operations team knows:

- ``lease_duration``: how long a follower waits, from the moment it last saw the Lease
  change, before it may take it over. Followers judge expiry by *their own* clock (when they
  observed the record change), never by the ``renewTime`` another machine wrote, so clock
  skew between nodes cannot cause two leaders. One refinement over client-go: a change seen
  by a poll happened after the previous poll was sent, so the follower dates it up to one
  retry period back (never more than that, and never before the previous poll). That keeps
  a takeover after a crash within the Lease duration of the leader's last renewal instead of
  up to a retry period later; it is safe because the leader dates its own renewals from
  when it *sent* them and gives up after the renew deadline, and ``lease_duration -
  renew_deadline`` must exceed that back-dating.
- ``renew_deadline``: how long the leader keeps trying to renew before it gives up leading.
  It is shorter than ``lease_duration``, so a leader that cannot reach the apiserver stops
  reconciling before anyone else may start.
- ``retry_period``: how often followers try to acquire and the leader renews (with jitter).
- ``holderIdentity``, ``acquireTime``, ``renewTime``, ``leaseDurationSeconds`` and
  ``leaseTransitions`` (incremented on every change of holder) are kept as client-go does.
  Updates are conditional on the ``resourceVersion`` read, so two candidates racing for an
  expired Lease cannot both win.
- On a graceful stop the leader releases the Lease (empty holder, duration 1 s), so a
  rolling restart hands over at once instead of after ``lease_duration``.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kfserving_operator.k8s.api import KubeApi, KubeError

logger = logging.getLogger(__name__)

API_VERSION = "coordination.k8s.io/v1"
JITTER = 1.2  # client-go's JitterFactor: retries wait retry_period * [1, 1.2)


@dataclass(frozen=True)
class LeaseTiming:
    """client-go's defaults (15 s / 10 s / 2 s)."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline:
            raise ValueError("the lease duration must be longer than the renew deadline")
        if not self.lease_duration - self.renew_deadline > self.backdating:
            raise ValueError("the lease duration must exceed the renew deadline by more than "
                             "1.2 x the retry period")
        if not self.renew_deadline > JITTER * self.retry_period:
            raise ValueError("the renew deadline must be longer than 1.2 x the retry period")
        if self.lease_duration < 1:
            raise ValueError("the lease duration must be at least 1 s")

    @property
    def backdating(self) -> float:
        """How far back a follower may date a change it saw: one (jittered) retry period."""
        return JITTER * self.retry_period


@dataclass(frozen=True)
class LeaseRecord:
    """The election fields of a Lease's spec."""

    holder: str
    duration_seconds: int
    acquire_time: str | None
    renew_time: str | None
    transitions: int


def micro_time(moment: datetime.datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds)."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_of(lease: dict[str, Any]) -> LeaseRecord:
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=spec.get("acquireTime"),
        renew_time=spec.get("renewTime"),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def next_record(current: LeaseRecord | None, identity: str, duration_seconds: int,
                now: datetime.datetime) -> LeaseRecord:
    """The record a candidate writes to take or keep the Lease."""
    stamp = micro_time(now)
    if current is not None and current.holder == identity:
        return LeaseRecord(identity, duration_seconds, current.acquire_time or stamp, stamp,
                           current.transitions)
    if current is None:
        return LeaseRecord(identity, duration_seconds, stamp, stamp, 0)
    # Taking it from someone else (or from nobody after a release) is a transition.
    return LeaseRecord(identity, duration_seconds, stamp, stamp, current.transitions + 1)


def lease_object(name: str, namespace: str, record: LeaseRecord,
                 resource_version: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": API_VERSION,
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": record.holder,
            "leaseDurationSeconds": record.duration_seconds,
            "acquireTime": record.acquire_time,
            "renewTime": record.renew_time,
            "leaseTransitions": record.transitions,
        },
    }


class LeaderElector:
    """Acquire, renew and release one Lease; ``leading`` / ``not_leading`` tell the state."""

    def __init__(self, api: KubeApi, *, name: str, namespace: str, identity: str,
                 timing: LeaseTiming | None = None,
                 on_change: Callable[[bool], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.timing = timing or LeaseTiming()
        self._on_change = on_change
        self._clock = clock
        self.leading = asyncio.Event()
        self.not_leading = asyncio.Event()
        self.not_leading.set()
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0  # our clock when the record last changed
        self._observed_version: str | None = None
        self._seen_since = 0.0  # when the last read that returned the observed record began
        self._last_renewal = 0.0  # when the last successful renewal was sent
        # Consecutive failed attempts: an apiserver outage is one warning, not one per retry.
        self._failures = 0

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set()

    def _duration_seconds(self) -> int:
        return max(1, round(self.timing.lease_duration))

    def _sleep_time(self) -> float:
        return self.timing.retry_period * random.uniform(1.0, JITTER)

    def _set_leading(self, leading: bool) -> None:
        if leading == self.is_leader:
            return
        if leading:
            self.not_leading.clear()
            self.leading.set()
            logger.info("became the leader (Lease %s/%s, identity %s)", self.namespace,
                        self.name, self.identity)
        else:
            self.leading.clear()
            self.not_leading.set()
            logger.warning("stopped leading (Lease %s/%s, identity %s)", self.namespace,
                           self.name, self.identity)
        if self._on_change is not None:
            self._on_change(leading)

    def _observe(self, record: LeaseRecord, version: str | None, read_started: float) -> None:
        if record != self._observed:
            now = self._clock()
            if self._observed is None:
                self._observed_at = now  # the first sight: no earlier read to date it by
            else:
                # It changed after our previous read was sent (and at most a retry period
                # ago, whatever delayed this read).
                self._observed_at = max(self._seen_since, now - self.timing.backdating)
            self._observed = record
        self._observed_version = version
        self._seen_since = read_started

    def expires_in(self) -> float:
        """Seconds until the observed holder's Lease expires, by our clock (<= 0: expired)."""
        if self._observed is None or not self._observed.holder:
            return 0.0
        duration = self._observed.duration_seconds or self.timing.lease_duration
        return self._observed_at + duration - self._clock()

    def _failed(self, what: str, exc: Exception) -> None:
        # The first failure is logged; the rest are counted and reported on recovery.
        self._failures += 1
        if self._failures == 1:
            logger.warning("cannot %s Lease %s/%s: %s (retrying every %.1fs, quietly)", what,
                           self.namespace, self.name, exc, self.timing.retry_period)

    def _reached(self) -> None:
        if self._failures:
            logger.info("Lease %s/%s reachable again after %d failed attempts", self.namespace,
                        self.name, self._failures)
            self._failures = 0

    async def try_acquire_or_renew(self) -> bool:
        """One attempt, client-go's ``tryAcquireOrRenew``; True when we hold the Lease."""
        started = self._clock()
        now = datetime.datetime.now(datetime.UTC)
        try:
            lease = await self.api.get(API_VERSION, "Lease", self.name, self.namespace)
        except Exception as exc:  # any failure is one failed attempt; the loop must go on
            self._failed("read", exc)
            return False
        self._reached()
        if lease is None:
            record = next_record(None, self.identity, self._duration_seconds(), now)
            try:
                created = await self.api.create(
                    lease_object(self.name, self.namespace, record, None))
            except Exception as exc:
                if not (isinstance(exc, KubeError) and exc.conflict):
                    self._failed("create", exc)
                return False
            self._observe(record, created.get("metadata", {}).get("resourceVersion"), started)
            self._last_renewal = started
            return True
        current = record_of(lease)
        version = lease.get("metadata", {}).get("resourceVersion")
        self._observe(current, version, started)
        if current.holder and current.holder != self.identity and self.expires_in() > 0:
            return False  # someone else holds an unexpired Lease
        record = next_record(current, self.identity, self._duration_seconds(), now)
        try:
            updated = await self.api.replace(
                lease_object(self.name, self.namespace, record, version))
        except Exception as exc:
            if not (isinstance(exc, KubeError) and exc.conflict):
                self._failed("update", exc)
            return False
        self._observe(record, updated.get("metadata", {}).get("resourceVersion"), started)
        self._last_renewal = started
        return True

    async def _acquire(self) -> None:
        while True:
            if await self.try_acquire_or_renew():
                return
            # Wake up as the observed Lease expires rather than up to a retry period later.
            wait = self._sleep_time()
            remaining = self.expires_in()
            if 0 < remaining < wait:
                wait = remaining + 0.01
            await asyncio.sleep(wait)

    async def _renew(self) -> None:
        """Renew every retry period until a renewal fails for longer than the deadline."""
        while True:
            await asyncio.sleep(self.timing.retry_period)
            while True:
                left = self.timing.renew_deadline - (self._clock() - self._last_renewal)
                if left <= 0:
                    return
                try:
                    async with asyncio.timeout(left):
                        renewed = await self.try_acquire_or_renew()
                except TimeoutError:
                    renewed = False
                if renewed:
                    break
                if self._observed is not None and self._observed.holder not in (
                        "", self.identity):
                    return  # someone else took it: stop at once
                await asyncio.sleep(min(self.timing.retry_period, max(0.0, left)))

    async def run(self) -> None:
        """Lead whenever possible, until cancelled."""
        try:
            while True:
                await self._acquire()
                self._set_leading(True)
                await self._renew()
                self._set_leading(False)
        finally:
            self._set_leading(False)

    async def release(self) -> None:
        """Give the Lease up (graceful stop), so another replica takes over at once."""
        if self._observed is None or self._observed.holder != self.identity:
            return
        self._set_leading(False)
        now = micro_time(datetime.datetime.now(datetime.UTC))
        record = LeaseRecord("", 1, now, now, self._observed.transitions)
        try:
            await self.api.replace(
                lease_object(self.name, self.namespace, record, self._observed_version))
        except Exception as exc:
            logger.warning("could not release Lease %s/%s: %s", self.namespace, self.name,
                           exc)
            return
        self._observed = record
        logger.info("released Lease %s/%s", self.namespace, self.name)
