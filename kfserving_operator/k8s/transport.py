"""httpx's transport interface over aiohttp's HTTP client, for the operator's API calls.

lightkube (and so httpx) stays the client: URLs, auth, kubeconfig handling, errors. Only the
bytes on the wire move to aiohttp, which the process runs anyway (kopf, the webhook server).
Why: profiling a 1000-InferenceService burst put a third of the operator's CPU in the HTTP
path of its writes, most of it in httpcore's pure-Python HTTP/1.1 handling, which also sends
headers and body as two TLS records and two socket writes per request. aiohttp parses
responses in C and sends a request in one write.

Response bodies are passed through undecoded (``auto_decompress=False``): httpx decodes
them by their Content-Encoding, as with its own transport.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx2

# Headers aiohttp computes itself from the request it sends.
_SKIPPED_HEADERS = frozenset({b"host", b"content-length", b"transfer-encoding"})


class _Body(httpx2.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except TimeoutError as exc:
            raise httpx2.ReadTimeout(str(exc) or "read timed out") from exc
        except aiohttp.ClientError as exc:
            raise httpx2.ReadError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        self._response.release()


def _timeout(request: httpx2.Request) -> aiohttp.ClientTimeout:
    limits: dict[str, Any] = request.extensions.get("timeout") or {}
    return aiohttp.ClientTimeout(total=None, connect=limits.get("connect"),
                                 sock_connect=limits.get("connect"),
                                 sock_read=limits.get("read"))


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """One aiohttp session (a keep-alive pool), created in the running event loop on first use."""

    def __init__(self, ssl_context: ssl.SSLContext, max_connections: int = 100) -> None:
        self._ssl = ssl_context
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=self._max_connections)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                                  skip_auto_headers=("User-Agent",))
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        headers = [(key.decode("latin-1"), value.decode("latin-1"))
                   for key, value in request.headers.raw if key.lower() not in _SKIPPED_HEADERS]
        body = request.content if request.method not in ("GET", "HEAD") else None
        try:
            response = await self._client().request(
                request.method, str(request.url), headers=headers, data=body,
                timeout=_timeout(request), allow_redirects=False)
        except aiohttp.ClientConnectorError as exc:
            raise httpx2.ConnectError(str(exc), request=request) from exc
        except TimeoutError as exc:
            raise httpx2.TimeoutException(str(exc) or "timed out", request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx2.ReadError(str(exc) or type(exc).__name__, request=request) from exc
        return httpx2.Response(status_code=response.status,
                               headers=list(response.raw_headers),
                               stream=_Body(response),
                               extensions={"http_version": b"HTTP/1.1"},
                               request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

