"""Transport errors are transient: short retries, throttled lines, retried on recovery."""

from __future__ import annotations

import asyncio
import logging

import httpx2
import pytest

from kfserving_operator.k8s.api import (
    ApiUnavailable,
    KubeError,
    NamespaceTerminating,
    _translate,
)
from kfserving_operator.operator.log_filters import RetryLineThrottle
from kfserving_operator.operator.workqueue import WorkQueue


def test_transport_errors_become_transient_api_errors() -> None:
    request = httpx2.Request("GET", "https://127.0.0.1:1/api")
    for exc in (httpx2.ConnectError("refused", request=request),
                httpx2.ReadTimeout("slow", request=request), ConnectionResetError()):
        error = _translate(exc, "get x")
        assert isinstance(error, ApiUnavailable) and error.transient
        assert "unreachable" in str(error)


def test_namespace_refusals_are_recognised() -> None:
    request = httpx2.Request("PATCH", "https://127.0.0.1/apis/x/v1/namespaces/n/things/a")
    terminating = (b'{"kind":"Status","code":403,"reason":"Forbidden","message":"unable to create'
                   b' new content in namespace n because it is being terminated","details":'
                   b'{"causes":[{"reason":"NamespaceTerminating"}]}}')
    gone = (b'{"kind":"Status","code":404,"reason":"NotFound","message":"namespaces \\"n\\" not'
            b' found","details":{"name":"n","kind":"namespaces"}}')
    object_gone = (b'{"kind":"Status","code":404,"reason":"NotFound","message":"x not found",'
                   b'"details":{"name":"a","kind":"things"}}')
    for body, code, expected in ((terminating, 403, True), (gone, 404, True),
                                 (object_gone, 404, False)):
        response = httpx2.Response(code, content=body, request=request,
                                   headers={"content-type": "application/json"})
        error = _translate(httpx2.HTTPStatusError("x", request=request, response=response), "a")
        assert isinstance(error, NamespaceTerminating) is expected
        assert isinstance(error, KubeError)


async def test_transient_failures_retry_soon_and_all_wait_ends_on_recovery(
        caplog: pytest.LogCaptureFixture) -> None:
    reachable = asyncio.Event()
    calls: dict[str, int] = {}
    noticed: list[int] = []

    async def handle(key: str) -> None:
        calls[key] = calls.get(key, 0) + 1
        if not reachable.is_set():
            raise ApiUnavailable("apply x: API server unreachable", 0)

    queue: WorkQueue[str] = WorkQueue(handle, workers=2, base_delay=0.5, max_delay=300,
                                      transient_max_delay=0.2, transient_log_interval=60,
                                      on_transient=lambda: noticed.append(1))
    queue.start()
    with caplog.at_level(logging.WARNING):
        for key in ("a", "b", "c"):
            queue.add(key)
        await asyncio.sleep(1.0)
    # Retried every 0.2 s, not on a growing backoff; one line for all of it.
    assert all(count >= 3 for count in calls.values()), calls
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1
    assert noticed
    reachable.set()
    assert queue.retry_now() == 3
    await asyncio.sleep(0.1)
    assert queue.pending() == 0
    await queue.stop()


def test_kopf_retry_lines_are_throttled() -> None:
    throttle = RetryLineThrottle(interval=60)

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("kopf._cogs.clients.watching", logging.ERROR, "", 0, message,
                                 None, None)

    lines = [record(f"Request attempt #{i}/7 failed; will retry: GET x") for i in range(5)]
    assert [throttle.filter(r) for r in lines] == [True, False, False, False, False]
    assert throttle.filter(record("something else"))
