"""Storage credentials: from a pod's ServiceAccount and its Secrets to env, volumes and mounts.

The webhook shell reads the ServiceAccount and the Secrets it lists (see
:func:`service_account_name` and :func:`secret_names_to_fetch`) and hands them over as
:class:`CredentialSources`; everything here is pure.

Rules, per Secret in the order the ServiceAccount lists them:

- The Secret's kind is the first that matches its keys: S3 (the configured secret-access-key
  key, ``AWS_SECRET_ACCESS_KEY`` by default), then GCS (the configured credential file
  name), then Azure (``AZ_CLIENT_SECRET``, ``AZURE_CLIENT_SECRET`` or
  ``AZURE_STORAGE_ACCESS_KEY``), then HTTP(S) headers (``https-host`` with ``headers``).
- The first Secret of a kind wins: a later S3 (GCS, Azure) Secret is skipped with a note,
  so two Secrets never mix (for example one's keys with the other's endpoint). HTTP(S)
  header Secrets combine, one per host.
- Secret values are never copied: every credential is a ``secretKeyRef``. Only non-secret
  settings (endpoint, region, ...) are plain values; they come from the Secret's
  annotations, falling back to the ``credentials.s3`` config.
- A missing ServiceAccount or Secret is not an error: nothing is injected and a note says so.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kfserving_operator.api.config import CredentialsConfig, S3CredentialsConfig
from kfserving_operator.podmutation import names

DEFAULT_SERVICE_ACCOUNT = "default"

# Kubernetes' classic rule for env var names, and the relaxed one (any printable ASCII
# but '=') that newer clusters accept.
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_RELAXED_ENV_NAME = re.compile(r"^[\x20-\x3c\x3e-\x7e]+$")

_S3, _GCS, _AZURE = "S3", "GCS", "Azure"


@dataclass(frozen=True)
class CredentialSources:
    """What the webhook shell read from the API for one pod.

    ``service_account`` is the pod's ServiceAccount object (``None`` when it does not
    exist or could not be read); ``secrets`` maps Secret names to Secret objects, for the
    Secrets that ServiceAccount lists and that exist. Objects are plain dicts as the API
    returns them (``data`` values base64-encoded); ``stringData`` is honoured too.
    """

    service_account: Mapping[str, Any] | None = None
    secrets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedCredentials:
    """What to add to each container that downloads models, and what happened."""

    env: tuple[Mapping[str, Any], ...] = ()
    volumes: tuple[Mapping[str, Any], ...] = ()
    volume_mounts: tuple[Mapping[str, Any], ...] = ()
    notes: tuple[str, ...] = ()


def service_account_name(pod: Mapping[str, Any]) -> str:
    """The ServiceAccount whose Secrets hold the pod's storage credentials."""
    spec = pod.get("spec")
    if isinstance(spec, Mapping):
        for key in ("serviceAccountName", "serviceAccount"):
            value = spec.get(key)
            if isinstance(value, str) and value:
                return value
    return DEFAULT_SERVICE_ACCOUNT


def secret_names_to_fetch(service_account: Mapping[str, Any] | None) -> list[str]:
    """Names of the Secrets the ServiceAccount lists, in its order, without repeats."""
    if not service_account:
        return []
    entries = service_account.get("secrets")
    if not isinstance(entries, list):
        return []
    seen: list[str] = []
    for entry in entries:
        if isinstance(entry, Mapping):
            name = entry.get("name")
            if isinstance(name, str) and name and name not in seen:
                seen.append(name)
    return seen


def resolve_credentials(
    sources: CredentialSources, config: CredentialsConfig, *, service_account: str
) -> ResolvedCredentials:
    """Turn the ServiceAccount's Secrets into env vars, volumes and mounts."""
    if sources.service_account is None:
        return ResolvedCredentials(
            notes=(
                f"service account {service_account!r} not found; no storage credentials injected",
            )
        )
    secret_names = secret_names_to_fetch(sources.service_account)
    if not secret_names:
        return ResolvedCredentials(
            notes=(
                f"service account {service_account!r} lists no secrets; "
                "no storage credentials injected",
            )
        )
    builder = _Builder(config)
    for name in secret_names:
        secret = sources.secrets.get(name)
        if secret is None:
            builder.notes.append(
                f"secret {name!r} listed by service account {service_account!r} not found; skipped"
            )
            continue
        builder.add_secret(name, secret)
    return ResolvedCredentials(
        env=tuple(builder.env),
        volumes=tuple(builder.volumes),
        volume_mounts=tuple(builder.mounts),
        notes=tuple(builder.notes),
    )


def _secret_ref(env_name: str, secret_name: str, key: str) -> dict[str, Any]:
    return {"name": env_name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}


def _value(env_name: str, value: str) -> dict[str, Any]:
    return {"name": env_name, "value": value}


def _keys(secret: Mapping[str, Any]) -> set[str]:
    keys: set[str] = set()
    for part in ("data", "stringData"):
        section = secret.get(part)
        if isinstance(section, Mapping):
            keys.update(str(key) for key in section)
    return keys


def _annotations(secret: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = secret.get("metadata")
    if isinstance(metadata, Mapping):
        annotations = metadata.get("annotations")
        if isinstance(annotations, Mapping):
            return annotations
    return {}


def _text_value(secret: Mapping[str, Any], key: str) -> str | None:
    """A Secret value in clear text (``stringData`` as is, ``data`` base64-decoded)."""
    string_data = secret.get("stringData")
    if isinstance(string_data, Mapping) and isinstance(string_data.get(key), str):
        return str(string_data[key])
    data = secret.get("data")
    if isinstance(data, Mapping) and isinstance(data.get(key), str):
        try:
            return base64.b64decode(data[key], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None


def _setting(annotations: Mapping[str, Any], annotation: str, fallback: str) -> str:
    """A non-empty annotation value, else the config fallback (possibly empty)."""
    value = annotations.get(annotation)
    if isinstance(value, str) and value:
        return value
    return fallback


class _Builder:
    def __init__(self, config: CredentialsConfig) -> None:
        self.config = config
        self.env: list[dict[str, Any]] = []
        self.volumes: list[dict[str, Any]] = []
        self.mounts: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.kind_source: dict[str, str] = {}
        self.header_hosts: dict[str, str] = {}

    def add_secret(self, name: str, secret: Mapping[str, Any]) -> None:
        keys = _keys(secret)
        if self.config.s3.s3_secret_access_key_name in keys:
            self._once(_S3, name, lambda: self._s3(name, keys, _annotations(secret)))
        elif self.config.gcs.gcs_credential_file_name in keys:
            self._once(_GCS, name, lambda: self._gcs(name))
        elif keys.intersection(names.AZURE_MARKER_KEYS):
            self._once(_AZURE, name, lambda: self._azure(name, keys))
        elif names.HTTPS_HOST_KEY in keys:
            self._https(name, keys, secret)
        else:
            self.notes.append(
                f"secret {name!r} has none of the S3, GCS, Azure or https-host keys; skipped"
            )

    def _once(self, kind: str, name: str, build: Callable[[], None]) -> None:
        first = self.kind_source.get(kind)
        if first is not None:
            self.notes.append(
                f"secret {name!r} holds {kind} credentials, but secret {first!r} listed "
                "earlier by the service account already provided them; skipped"
            )
            return
        self.kind_source[kind] = name
        build()
        self.notes.append(f"{kind} credentials from secret {name!r}")

    def _s3(self, name: str, keys: set[str], annotations: Mapping[str, Any]) -> None:
        cfg: S3CredentialsConfig = self.config.s3
        if cfg.s3_access_key_id_name not in keys:
            self.notes.append(
                f"secret {name!r} has no key {cfg.s3_access_key_id_name!r}; "
                f"{names.AWS_ACCESS_KEY_ID_ENV} refers to it and the container will not "
                "start until the key is added"
            )
        self.env.append(_secret_ref(names.AWS_ACCESS_KEY_ID_ENV, name, cfg.s3_access_key_id_name))
        self.env.append(
            _secret_ref(names.AWS_SECRET_ACCESS_KEY_ENV, name, cfg.s3_secret_access_key_name)
        )
        if names.AWS_SESSION_TOKEN in keys:
            self.env.append(_secret_ref(names.AWS_SESSION_TOKEN, name, names.AWS_SESSION_TOKEN))

        endpoint = _setting(annotations, names.S3_ENDPOINT_ANNOTATION, cfg.s3_endpoint)
        use_https = _setting(annotations, names.S3_USE_HTTPS_ANNOTATION, cfg.s3_use_https)
        if endpoint:
            scheme = ""
            for prefix in ("https://", "http://"):
                if endpoint.startswith(prefix):
                    scheme, endpoint = prefix[:-3], endpoint[len(prefix) :]
            if use_https:
                use_https = _normalise_flag(use_https)
                scheme = "http" if use_https == "0" else "https"
            elif scheme:
                use_https = "0" if scheme == "http" else "1"
            self.env.append(_value(names.S3_ENDPOINT_ENV, endpoint))
            self.env.append(_value(names.AWS_ENDPOINT_URL_ENV, f"{scheme or 'https'}://{endpoint}"))
            if use_https:
                self.env.append(_value(names.S3_USE_HTTPS_ENV, use_https))
        region = _setting(annotations, names.S3_REGION_ANNOTATION, cfg.s3_region)
        if region:
            self.env.append(_value(names.AWS_REGION_ENV, region))
            self.env.append(_value(names.AWS_DEFAULT_REGION_ENV, region))
        verify_ssl = _setting(annotations, names.S3_VERIFY_SSL_ANNOTATION, cfg.s3_verify_ssl)
        if verify_ssl:
            self.env.append(_value(names.S3_VERIFY_SSL_ENV, verify_ssl))
        anonymous = _setting(annotations, names.S3_USE_ANON_CREDENTIAL_ANNOTATION, "")
        if anonymous:
            self.env.append(_value(names.AWS_ANON_CREDENTIAL_ENV, anonymous))
        virtual_bucket = _setting(annotations, names.S3_USE_VIRTUAL_BUCKET_ANNOTATION, "")
        if virtual_bucket:
            self.env.append(_value(names.S3_USE_VIRTUAL_BUCKET_ENV, virtual_bucket))

    def _gcs(self, name: str) -> None:
        file_name = self.config.gcs.gcs_credential_file_name
        self.volumes.append({"name": names.GCS_VOLUME_NAME, "secret": {"secretName": name}})
        self.mounts.append(
            {"name": names.GCS_VOLUME_NAME, "mountPath": names.GCS_MOUNT_PATH, "readOnly": True}
        )
        self.env.append(_value(names.GCS_CREDENTIALS_ENV, names.GCS_MOUNT_PATH + file_name))

    def _azure(self, name: str, keys: set[str]) -> None:
        # Both the KFServing names (AZ_*) and the current ones (AZURE_*) are set, each read
        # from whichever key the Secret has, so old and new storage initializers both work.
        # Keys the Secret lacks are left out (a reference to a missing key would keep the
        # container from starting).
        missing: list[str] = []
        for generation in (0, 1):
            for pair in names.AZURE_KEYS:
                env_name, other = pair[generation], pair[1 - generation]
                key = env_name if env_name in keys else other if other in keys else None
                if key is None:
                    if generation == 1:
                        missing.append("/".join(pair))
                    continue
                self.env.append(_secret_ref(env_name, name, key))
        if names.AZURE_STORAGE_ACCESS_KEY in keys:
            self.env.append(
                _secret_ref(names.AZURE_STORAGE_ACCESS_KEY, name, names.AZURE_STORAGE_ACCESS_KEY)
            )
        if missing:
            self.notes.append(f"Azure secret {name!r} has no {', '.join(missing)}; not set")

    def _https(self, name: str, keys: set[str], secret: Mapping[str, Any]) -> None:
        if names.HTTPS_HEADERS_KEY not in keys:
            self.notes.append(
                f"secret {name!r} has {names.HTTPS_HOST_KEY!r} but no "
                f"{names.HTTPS_HEADERS_KEY!r} key; skipped"
            )
            return
        host = _text_value(secret, names.HTTPS_HOST_KEY)
        host = host.strip() if host is not None else None
        if not host:
            self.notes.append(
                f"secret {name!r}: {names.HTTPS_HOST_KEY!r} is empty or not valid base64 "
                "UTF-8; skipped"
            )
            return
        env_name = host + names.HTTPS_HEADERS_ENV_SUFFIX
        if not _RELAXED_ENV_NAME.match(env_name):
            self.notes.append(
                f"secret {name!r}: host {host!r} cannot form an environment variable name; skipped"
            )
            return
        if not _ENV_NAME.match(env_name):
            self.notes.append(
                f"secret {name!r}: {env_name!r} needs a cluster that accepts relaxed "
                "environment variable names (Kubernetes 1.30 or later)"
            )
        first = self.header_hosts.get(host)
        if first is not None:
            self.notes.append(
                f"secret {name!r} holds headers for host {host!r}, but secret {first!r} "
                "listed earlier already provided them; skipped"
            )
            return
        self.header_hosts[host] = name
        self.env.append(_secret_ref(env_name, name, names.HTTPS_HEADERS_KEY))
        self.notes.append(f"HTTP headers for host {host!r} from secret {name!r}")


def _normalise_flag(value: str) -> str:
    """``0``/``false`` -> ``0``, ``1``/``true`` -> ``1``; anything else is kept as written."""
    lowered = value.strip().lower()
    if lowered in {"0", "false"}:
        return "0"
    if lowered in {"1", "true"}:
        return "1"
    return value
