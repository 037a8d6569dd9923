"""Renewal decisions for the self-managed webhook certificate."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path

from kfserving_operator.webhooks import certificates


def test_fresh_secret_is_kept_and_matches_what_is_served(tmp_path: Path) -> None:
    secret = certificates.new_secret("svc", "ns")
    now = datetime.datetime.now(datetime.UTC)
    assert not certificates.secret_needs_renewal(secret, now)
    served = certificates.from_secret(secret, tmp_path)
    assert certificates.secret_matches(secret, served)
    assert served.ca_bundle == base64.b64decode(secret["data"]["ca.crt"])
    other = certificates.new_secret("svc", "ns")
    assert not certificates.secret_matches(other, served)


def test_missing_incomplete_or_expiring_secret_is_renewed() -> None:
    now = datetime.datetime.now(datetime.UTC)
    assert certificates.secret_needs_renewal(None, now)
    secret = certificates.new_secret("svc", "ns")
    partial = {**secret, "data": {"tls.crt": secret["data"]["tls.crt"]}}
    assert certificates.secret_needs_renewal(partial, now)
    # Certificates live a year; 30 days before the end they are renewed.
    assert certificates.secret_needs_renewal(secret, now + datetime.timedelta(days=340))
    assert not certificates.secret_needs_renewal(secret, now + datetime.timedelta(days=300))


def test_loopback_certificate_names_the_host() -> None:
    from cryptography import x509

    served = certificates.loopback_certificate("127.0.0.1")
    cert = x509.load_pem_x509_certificate(served.cert_file.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
