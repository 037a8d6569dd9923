"""How API failures are classified: a missing resource type is not a missing object."""

from __future__ import annotations

import httpx2

from kfserving_operator.k8s.api import KubeError, ResourceNotInstalled, _translate


def _status_error(code: int, body: bytes, content_type: str) -> httpx2.HTTPStatusError:
    request = httpx2.Request("PATCH", "https://127.0.0.1/apis/x/v1/namespaces/n/things/a")
    response = httpx2.Response(code, content=body, headers={"content-type": content_type},
                               request=request)
    return httpx2.HTTPStatusError("failed", request=request, response=response)


def test_bare_404_means_the_resource_type_is_not_served() -> None:
    error = _translate(_status_error(404, b"404 page not found", "text/plain"), "apply x")
    assert isinstance(error, ResourceNotInstalled)
    assert error.not_found


def test_404_status_body_means_the_object_is_gone() -> None:
    body = (b'{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound",'
            b'"message":"things \\"a\\" not found","code":404}')
    error = _translate(_status_error(404, body, "application/json"), "apply status of a")
    assert not isinstance(error, ResourceNotInstalled)
    assert error.not_found and error.reason == "NotFound"
    assert "not found" in str(error)


def test_other_failures_keep_their_code() -> None:
    error = _translate(_status_error(409, b'{"kind":"Status","reason":"Conflict","code":409}',
                                     "application/json"), "create a")
    assert isinstance(error, KubeError) and error.conflict
    plain = _translate(_status_error(503, b"unavailable", "text/plain"), "get a")
    assert plain.status == 503 and not isinstance(plain, ResourceNotInstalled)
