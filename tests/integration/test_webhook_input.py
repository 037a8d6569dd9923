"""What reaches the webhook port: big reviews, malformed ones, deep ones, slow clients, floods.

Before the fix: a review over aiohttp's default 1 MiB got 413, which the API server reports
as an internal error; JSON that is not an object gave HTTP 500 with tracebacks; deep nesting
gave 500 or a recursion "internal error"; a client announcing a body and never sending it, or
trickling its headers, was held open forever, with no cap on connections.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from kfserving_operator.webhooks.registration import VALIDATOR_PATH
from kfserving_operator.webhooks.server import BODY_TIMEOUT_SECONDS, HEADER_TIMEOUT_SECONDS
from tests.integration.test_poison_objects import poison_isvc
from tests.support.cluster import Cluster, KubectlError
from tests.support.isvc import sklearn_isvc
from tests.support.operator import OperatorProcess

SLACK_SECONDS = 5.0


@pytest.fixture
def local(operator: OperatorProcess | None) -> OperatorProcess:
    if operator is None or operator.mode != "local":
        pytest.skip("talks to this session's operator on its loopback webhook port")
    return operator


def _context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test checks behaviour, not the certificate
    return context


def _post(port: int, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"https://127.0.0.1:{port}{VALIDATOR_PATH}", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, context=_context(), timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_update_review_above_one_mebibyte_is_admitted(cluster: Cluster, namespace: str,
                                                      local: OperatorProcess) -> None:
    # ~700 KB in a preserved field: the update's review carries it twice (object, oldObject).
    big = sklearn_isvc("big")
    big["spec"]["predictor"]["affinity"] = {"note": "x" * 700_000}
    # create, not apply: apply would copy it all into an annotation (256 KiB at most).
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(big))
    cluster.kubectl("label", "isvc", "big", "-n", namespace, "team=a")
    labels = cluster.get_json("isvc", "big", "-n", namespace)["metadata"]["labels"]
    assert labels["team"] == "a"


@pytest.mark.parametrize("body", [b"[]", b"null", b'"x"', b'{"request": "x"}',
                                  b'{"request": {"object": []}}', b"{not json"])
def test_malformed_reviews_get_a_clean_400(local: OperatorProcess, body: bytes) -> None:
    log_before = len(local.log())
    status, answer = _post(local.webhook_port, body)
    assert status == 400 and answer["error"]
    assert "Traceback" not in local.log()[log_before:]


def test_deep_nesting_is_denied_naming_the_field(cluster: Cluster, namespace: str,
                                                 local: OperatorProcess) -> None:
    log_before = len(local.log())
    with pytest.raises(KubectlError) as refused:
        cluster.kubectl("create", "-f", "-", input=poison_isvc("deep", namespace))
    assert "spec.predictor.affinity" in refused.value.stderr
    assert "nested deeper than" in refused.value.stderr
    review = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                         "request": {"uid": "u1", "operation": "CREATE",
                                     "object": {"spec": "<deep>"}}})
    deep = '{"a":' * 3000 + "1" + "}" * 3000
    status, answer = _post(local.webhook_port, review.replace('"<deep>"', deep).encode())
    assert status == 200
    assert answer["response"]["uid"] == "u1" and answer["response"]["allowed"] is False
    assert "spec.a.a" in answer["response"]["status"]["message"]
    assert "Traceback" not in local.log()[log_before:]


def _tls(port: int) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return _context().wrap_socket(raw)


def _closed_within(sock: ssl.SSLSocket, seconds: float) -> float | None:
    """Seconds until the server closed the connection, or None if it stayed open."""
    start = time.monotonic()
    sock.settimeout(0.5)
    while time.monotonic() - start < seconds:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - start
            # a response (408): the server closes right after it
        except TimeoutError:
            continue
        except (ConnectionError, ssl.SSLError):
            return time.monotonic() - start
    return None


def test_a_body_that_never_arrives_is_cut_off(local: OperatorProcess) -> None:
    sock = _tls(local.webhook_port)
    sock.sendall(f"POST {VALIDATOR_PATH} HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\nContent-Length: 10485760\r\n\r\n"
                 '{"request"'.encode())
    closed = _closed_within(sock, BODY_TIMEOUT_SECONDS + SLACK_SECONDS)
    sock.close()
    assert closed is not None, "the server kept waiting for a body that never came"


def test_trickling_headers_are_cut_off(local: OperatorProcess) -> None:
    sock = _tls(local.webhook_port)
    sock.sendall(f"POST {VALIDATOR_PATH} HTTP/1.1\r\n".encode())
    start = time.monotonic()
    closed = False
    while time.monotonic() - start < HEADER_TIMEOUT_SECONDS + SLACK_SECONDS:
        try:
            sock.sendall(b"X")  # one byte of a header line per second, never finished
        except (ConnectionError, ssl.SSLError):
            closed = True
            break
        if _closed_within(sock, 1.0) is not None:
            closed = True
            break
    sock.close()
    assert closed, "the server kept a trickling client open"


def test_connections_beyond_the_cap_are_refused(local: OperatorProcess) -> None:
    cap = 20  # small, so that opening them all takes far less than the header timeout
    local.env["KFSERVING_WEBHOOK_MAX_CONNECTIONS"] = str(cap)
    held: list[ssl.SSLSocket | None] = []
    try:
        local.restart()
        for _ in range(cap + 10):
            try:
                held.append(_tls(local.webhook_port))
            except (ConnectionError, ssl.SSLError):
                held.append(None)  # refused during the handshake
        extra = held[-10:]
        refused = sum(1 for sock in extra
                      if sock is None or _closed_within(sock, 2.0) is not None)
        assert refused == 10
        for sock in held[:cap - 5]:  # the apiserver may hold a few connections too
            assert sock is not None and _closed_within(sock, 0.1) is None
    finally:
        for sock in held:
            if sock is not None:
                sock.close()
        local.env.pop("KFSERVING_WEBHOOK_MAX_CONNECTIONS", None)
        local.restart()
    # Once the flood is gone, requests are served again.
    status, _ = _post(local.webhook_port, b"[]")
    assert status == 400


def _request_on(sock: ssl.SSLSocket, body: bytes) -> bytes:
    """Send one HTTP/1.1 request on an open connection and return the response's first line."""
    sock.sendall(f"POST {VALIDATOR_PATH} HTTP/1.1\r\nHost: x\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                 .encode() + body)
    sock.settimeout(10)
    received = b""
    while b"\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received.split(b"\r\n", 1)[0]


def test_an_idle_kept_alive_connection_outlives_the_header_deadline(
        local: OperatorProcess) -> None:
    """The API server keeps idle webhook connections for 90 s and reuses them for the next
    review. A server that closes them sooner races that reuse, and the API server reports the
    lost POST as a failed admission call (EOF). Idle connections therefore stay open longer
    than the header deadline; only a request that has started must finish its headers."""
    sock = _tls(local.webhook_port)
    try:
        assert _request_on(sock, b"[]").startswith(b"HTTP/1.1 400")
        assert _closed_within(sock, HEADER_TIMEOUT_SECONDS + 2.0) is None, (
            "the server closed an idle kept-alive connection after the header deadline")
        assert _request_on(sock, b"[]").startswith(b"HTTP/1.1 400")
    finally:
        sock.close()
