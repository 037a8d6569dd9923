"""In-cluster webhook certificates without cert-manager: issued, stored, reused, re-issued.

Runs the operator in ``cluster`` webhook mode against a control plane of its own, since the
Service-referenced webhook configurations it registers cannot be reached from the apiserver
here (there is no kube-proxy) and would block InferenceService writes in the shared cluster.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509

from tests.support.cluster import Cluster, wait_for
from tests.support.operator import run_operator

SECRET = "kfserving-webhook-server-cert"
SERVICE_HOST = "kfserving-webhook-server-service.kfserving-system.svc"


def _secret(cluster: Cluster) -> dict[str, bytes]:
    data = cluster.get_json("secret", SECRET, "-n", "kfserving-system")["data"]
    return {key: base64.b64decode(value) for key, value in data.items()}


# Every clientConfig the operator registers: the InferenceService defaulters and validators
# (v1beta1 and v1alpha2), the pod mutator, the TrainedModel validator and the CRD conversion.
CLIENT_CONFIGS = 7


def _ca_bundles(cluster: Cluster) -> list[bytes]:
    client_configs = []
    for kind, name in (("mutatingwebhookconfigurations", "inferenceservice.serving.kubeflow.org"),
                       ("validatingwebhookconfigurations",
                        "inferenceservice.serving.kubeflow.org"),
                       ("validatingwebhookconfigurations", "trainedmodel.serving.kubeflow.org")):
        config: dict[str, Any] = cluster.get_json(kind, name)
        client_configs += [hook["clientConfig"] for hook in config["webhooks"]]
    crd = cluster.get_json("crd", "inferenceservices.serving.kubeflow.org")
    client_configs.append(crd["spec"]["conversion"]["webhook"]["clientConfig"])
    bundles = []
    for client_config in client_configs:
        service = client_config["service"]
        assert (service["name"], service["namespace"], service["port"]) == (
            "kfserving-webhook-server-service", "kfserving-system", 443)
        bundles.append(base64.b64decode(client_config.get("caBundle") or ""))
    return bundles


def _served_certificate(port: int, ca: bytes) -> bytes:
    """Handshake as the apiserver would (CA pinned, service DNS name) and return the cert."""
    with tempfile.NamedTemporaryFile(suffix=".crt") as ca_file:
        ca_file.write(ca)
        ca_file.flush()
        context = ssl.create_default_context(cafile=ca_file.name)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname=SERVICE_HOST) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_self_managed_certificate_lifecycle(bare_cluster: Cluster, tmp_path: Path) -> None:
    cluster = bare_cluster
    with run_operator(cluster, tmp_path, webhook_mode="cluster") as operator:
        first = _secret(cluster)
        assert set(first) >= {"tls.crt", "tls.key", "ca.crt"}
        cert = x509.load_pem_x509_certificate(first["tls.crt"])
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert SERVICE_HOST in names.get_values_for_type(x509.DNSName)
        assert _ca_bundles(cluster) == [first["ca.crt"]] * CLIENT_CONFIGS
        served = _served_certificate(operator.webhook_port, first["ca.crt"])
        assert served == cert.public_bytes(encoding=_der())

        # A restart reuses the stored certificate: same Secret, same caBundle.
        operator.restart()
        assert _secret(cluster) == first
        assert _ca_bundles(cluster) == [first["ca.crt"]] * CLIENT_CONFIGS

        # Losing the Secret means a new CA, and the caBundle follows it.
        cluster.kubectl("delete", "secret", SECRET, "-n", "kfserving-system")
        operator.restart()
        second = _secret(cluster)
        assert second["ca.crt"] != first["ca.crt"]
        assert _ca_bundles(cluster) == [second["ca.crt"]] * CLIENT_CONFIGS
        _served_certificate(operator.webhook_port, second["ca.crt"])
        assert json.dumps(operator.log()).count("Traceback") == 0


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def test_mounted_certificate_rotation_is_picked_up(bare_cluster: Cluster,
                                                   tmp_path: Path) -> None:
    """cert-manager rewrites the mounted files; the operator serves and registers the new CA."""
    from kfserving_operator.pki import issue_serving_cert, new_ca
    from kfserving_operator.webhooks.certificates import service_dns_names, write_pair

    cert_dir = tmp_path / "certs"

    def issue() -> bytes:
        ca = new_ca("test-cert-manager")
        pair = issue_serving_cert(ca, SERVICE_HOST,
                                  service_dns_names("kfserving-webhook-server-service",
                                                    "kfserving-system"))
        write_pair(cert_dir, pair, ca.cert_pem)
        return ca.cert_pem

    first_ca = issue()
    env = {"KFSERVING_CERT_DIR": str(cert_dir), "KFSERVING_CERT_CHECK_SECONDS": "1"}
    with run_operator(bare_cluster, tmp_path, webhook_mode="cluster",
                      extra_env=env) as operator:
        assert _ca_bundles(bare_cluster) == [first_ca] * CLIENT_CONFIGS
        _served_certificate(operator.webhook_port, first_ca)
        second_ca = issue()
        wait_for(lambda: _ca_bundles(bare_cluster) == [second_ca] * CLIENT_CONFIGS,
                 timeout=20,
                 message="caBundle of the rotated CA")
        wait_for(lambda: _handshake_ok(operator.webhook_port, second_ca), timeout=20,
                 message="the rotated certificate served")
        # No Secret is involved when the certificate is mounted.
        assert bare_cluster.kubectl("get", "secret", SECRET, "-n", "kfserving-system",
                                    check=False) == ""


def _handshake_ok(port: int, ca: bytes) -> bool:
    try:
        _served_certificate(port, ca)
    except ssl.SSLError:
        return False
    return True


def test_self_managed_certificate_is_replaced_without_a_restart(bare_cluster: Cluster,
                                                               tmp_path: Path) -> None:
    env = {"KFSERVING_CERT_CHECK_SECONDS": "1"}
    with run_operator(bare_cluster, tmp_path, webhook_mode="cluster",
                      extra_env=env) as operator:
        first = _secret(bare_cluster)
        pid = operator.process.pid
        bare_cluster.kubectl("delete", "secret", SECRET, "-n", "kfserving-system")

        def renewed() -> dict[str, bytes] | None:
            out = bare_cluster.kubectl("get", "secret", SECRET, "-n", "kfserving-system",
                                       check=False)
            if not out:
                return None
            secret = _secret(bare_cluster)
            return secret if secret["ca.crt"] != first["ca.crt"] else None

        second = wait_for(renewed, timeout=20, message="a new certificate in the Secret")
        wait_for(lambda: _ca_bundles(bare_cluster) == [second["ca.crt"]] * CLIENT_CONFIGS,
                 timeout=20,
                 message="caBundle of the new CA")
        wait_for(lambda: _handshake_ok(operator.webhook_port, second["ca.crt"]), timeout=20,
                 message="the new certificate served")
        assert operator.process.pid == pid and operator.process.poll() is None
