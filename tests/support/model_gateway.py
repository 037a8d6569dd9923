"""A stand-in for the data path of a multi-model InferenceService, on loopback.

On the loopback control plane there are no pods: no Istio ingress gateway, no agent sidecar,
no model server. What the SDK's ``wait_model_ready`` checks through them is that
``GET http://<ingress>/<protocol>/models/<model>`` with the InferenceService's host answers
200 once the agent has loaded the model, which it does for every model in the
InferenceService's ``models.json``. This server answers exactly that from the cluster: 200 when
the Host header is the URL host of an InferenceService and its ``modelconfig-<isvc>-0`` lists
the model, 404 otherwise. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

from tests.support.cluster import Cluster


def _loaded_models(cluster: Cluster, namespace: str, host: str) -> set[str] | None:
    """Models in the model config of the InferenceService served at ``host`` (None: none)."""
    isvcs = json.loads(cluster.kubectl("get", "isvc", "-n", namespace, "-o", "json"))["items"]
    for isvc in isvcs:
        url = (isvc.get("status") or {}).get("url") or ""
        if urlparse(url).hostname == host:
            name = isvc["metadata"]["name"]
            out = cluster.kubectl("get", "configmap", f"modelconfig-{name}-0", "-n", namespace,
                                  "-o", "json", check=False)
            if not out:
                return set()
            entries = json.loads(json.loads(out)["data"].get("models.json") or "[]")
            return {entry.get("modelName") for entry in entries}
    return None


@contextmanager
def model_gateway(cluster: Cluster, namespace: str) -> Iterator[str]:
    """Serve the stand-in; yields ``127.0.0.1:<port>``, the SDK's ``cluster_ip``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            host = (self.headers.get("Host") or "").split(":")[0]
            found = None
            if len(parts) == 3 and parts[0] in ("v1", "v2") and parts[1] == "models":
                models = _loaded_models(cluster, namespace, host)
                found = models is not None and parts[2] in models
            status = 200 if found else 404
            body = json.dumps({"name": parts[-1], "ready": bool(found)}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
