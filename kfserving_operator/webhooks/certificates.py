"""Serving certificates for the webhook server.

Three sources, in order of preference:

1. A directory with ``tls.crt``/``tls.key`` (and ``ca.crt``) mounted by cert-manager or any
   other issuer (``--cert-dir``). The server reloads it when it changes.
2. In a cluster without cert-manager: the Secret ``kfserving-webhook-server-cert`` in the
   operator's namespace. The operator creates a CA and a serving certificate, stores them
   there, and renews them 30 days before expiry; the ``caBundle`` of its own webhook
   configurations is kept current from the same Secret.
3. Outside a cluster (``make run``, tests): a throw-away CA and a certificate for
   ``127.0.0.1``/``localhost``, held in a temporary directory for the process lifetime.
"""

from __future__ import annotations

import base64
import datetime
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfserving_operator.pki import (
    KeyPair,
    certificate_expiry,
    issue_serving_cert,
    new_ca,
)

SECRET_NAME = "kfserving-webhook-server-cert"
RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class ServingCertificate:
    """Files for the TLS server and the CA bundle for the webhook configurations."""

    cert_file: Path
    key_file: Path
    ca_bundle: bytes

    @property
    def cert_pem(self) -> bytes:
        return self.cert_file.read_bytes()


def write_pair(directory: Path, pair: KeyPair, ca_pem: bytes) -> ServingCertificate:
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(pair.cert_pem)
    key_file.write_bytes(pair.key_pem)
    key_file.chmod(0o600)
    (directory / "ca.crt").write_bytes(ca_pem)
    return ServingCertificate(cert_file, key_file, ca_pem)


def loopback_certificate(host: str) -> ServingCertificate:
    """A CA and a serving certificate valid for the loopback host the apiserver will call."""
    ca = new_ca("kfserving-webhook-local-ca")
    ips = tuple(sorted({"127.0.0.1", host} - {"localhost"}))
    pair = issue_serving_cert(ca, "kfserving-webhook", dns_names=("localhost",),
                              ip_addresses=ips)
    return write_pair(private_directory(), pair, ca.cert_pem)


TEMP_PREFIX = "kfserving-webhook-"


def private_directory() -> Path:
    """A new temporary directory for key material, named after this process.

    The operator removes it when it stops; :func:`remove_stale_directories` removes those
    of processes that were killed before they could.
    """
    return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))


def remove_stale_directories() -> list[Path]:
    """Remove the key directories of operator processes that no longer run."""
    removed = []
    for path in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*-*"):
        pid_text = path.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _alive(int(pid_text)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def from_directory(directory: Path) -> ServingCertificate:
    """Certificates mounted by cert-manager (or anything writing the same file names)."""
    ca_file = directory / "ca.crt"
    ca = ca_file.read_bytes() if ca_file.exists() else (directory / "tls.crt").read_bytes()
    return ServingCertificate(directory / "tls.crt", directory / "tls.key", ca)


def service_dns_names(service: str, namespace: str) -> tuple[str, ...]:
    return (service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
            f"{service}.{namespace}.svc.cluster.local")


def _secret_expiry(secret: dict[str, Any] | None) -> datetime.datetime | None:
    """When the Secret's certificate expires; None when the Secret is missing or incomplete."""
    data = (secret or {}).get("data") or {}
    if not all(data.get(key) for key in ("tls.crt", "tls.key", "ca.crt")):
        return None
    return certificate_expiry(base64.b64decode(data["tls.crt"]))


def secret_needs_renewal(secret: dict[str, Any] | None, now: datetime.datetime) -> bool:
    """True when the Secret is missing, incomplete or expires within ``RENEW_BEFORE``."""
    expiry = _secret_expiry(secret)
    return expiry is None or expiry - now < RENEW_BEFORE


def secret_is_usable(secret: dict[str, Any] | None, now: datetime.datetime) -> bool:
    """True when the Secret holds a complete pair that has not expired yet."""
    expiry = _secret_expiry(secret)
    return expiry is not None and expiry > now


def _first_pem_certificate(bundle: bytes) -> bytes:
    end = b"-----END CERTIFICATE-----"
    index = bundle.find(end)
    return bundle[:index + len(end)] + b"\n" if index >= 0 else b""


def new_secret(service: str, namespace: str, previous: dict[str, Any] | None = None,
               owner: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Secret holding a fresh CA and a serving certificate for the webhook Service.

    ``ca.crt`` also keeps the CA of ``previous`` (the Secret being renewed): replicas that
    still serve the previous certificate stay trusted by the ``caBundle`` until they load
    the new one.

    With ``owner`` (an ownerReference to the installed webhook Service), the Secret carries
    it: uninstalling the manifests deletes the Service, and the garbage collector then
    deletes the Secret the operator created, while upgrades keep both.
    """
    ca = new_ca("kfserving-webhook-ca")
    pair = issue_serving_cert(ca, f"{service}.{namespace}.svc",
                              dns_names=service_dns_names(service, namespace))
    bundle = ca.cert_pem
    previous_ca = ((previous or {}).get("data") or {}).get("ca.crt")
    if previous_ca:
        bundle += _first_pem_certificate(base64.b64decode(previous_ca))

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    metadata: dict[str, Any] = {"name": SECRET_NAME, "namespace": namespace}
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(pair.cert_pem), "tls.key": b64(pair.key_pem),
                 "ca.crt": b64(bundle)},
    }


def from_secret(secret: dict[str, Any], directory: Path) -> ServingCertificate:
    data = secret["data"]
    pair = KeyPair(base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"]))
    return write_pair(directory, pair, base64.b64decode(data["ca.crt"]))


def secret_matches(secret: dict[str, Any], certificate: ServingCertificate) -> bool:
    """True when ``certificate`` is the one the Secret holds."""
    data = secret.get("data") or {}
    try:
        return bool(base64.b64decode(data.get("tls.crt", "")) == certificate.cert_file.read_bytes())
    except OSError:
        return False
