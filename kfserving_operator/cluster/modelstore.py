"""The lane's model store: a real S3 server (MinIO) holding the example models.

MinIO runs in the lane's network namespace on the pod bridge's address, so storage
initializers in pods reach it as ``NODE_IP:<port>``. At ``cluster up`` it gets a fresh data
directory and fresh credentials, a ``models`` bucket with the models the node image build
trained (``sklearn/iris``, ``xgboost/iris``, ``sklearn/empty``), and, in the ``default``
namespace, the Secret and ServiceAccount that KFServing's S3 credential path reads: the
operator's pod webhook turns the ServiceAccount's Secret into the storage initializer's
``AWS_*`` and ``S3_*`` environment. :func:`credential_objects` makes the same pair for any
other namespace (the e2e tests use it).
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kfserving_operator.cluster.common import free_port, log_tail, wait_until

BUCKET = "models"
SERVICE_ACCOUNT = "kfserving-models"
SECRET = "kfserving-models-s3"
REGION = "us-east-1"
READY_TIMEOUT_SECONDS = 60.0


class ModelStoreError(RuntimeError):
    """The model store could not be started or filled."""


@dataclass(frozen=True)
class ModelStoreAccess:
    """How to reach the store; saved as ``modelstore.json`` in the state directory."""

    endpoint: str  # host:port, as the S3 endpoint annotation takes it
    access_key: str
    secret_key: str

    def save(self, state_dir: Path) -> None:
        path = state_dir / "modelstore.json"
        path.write_text(json.dumps(asdict(self)))
        path.chmod(0o600)

    @classmethod
    def load(cls, state_dir: Path) -> ModelStoreAccess | None:
        path = state_dir / "modelstore.json"
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))


def credential_objects(access: ModelStoreAccess, namespace: str) -> list[dict[str, Any]]:
    """The Secret (keys and KFServing's S3 annotations) and the ServiceAccount naming it."""
    def b64(value: str) -> str:
        return base64.b64encode(value.encode()).decode()

    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": SECRET,
                "namespace": namespace,
                "annotations": {
                    "serving.kubeflow.org/s3-endpoint": access.endpoint,
                    "serving.kubeflow.org/s3-usehttps": "0",
                    "serving.kubeflow.org/s3-region": REGION,
                },
            },
            "type": "Opaque",
            "data": {"AWS_ACCESS_KEY_ID": b64(access.access_key),
                     "AWS_SECRET_ACCESS_KEY": b64(access.secret_key)},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace},
            "secrets": [{"name": SECRET}],
        },
    ]


def model_files(models_dir: Path) -> list[tuple[str, Path]]:
    """(object key, file) for every file below ``models_dir``, keys relative to it."""
    return sorted((path.relative_to(models_dir).as_posix(), path)
                  for path in models_dir.rglob("*") if path.is_file())


class ModelStore:
    """Starts MinIO and fills it; ``start`` is the lane's, as for ``RealNode``."""

    def __init__(self, state_dir: Path, minio: Path, models_dir: Path, address: str, *,
                 start: Callable[[str, list[str], dict[str, str] | None], int],
                 progress: Callable[[str], None]) -> None:
        self.state_dir = state_dir
        self.minio = minio
        self.models_dir = models_dir
        self.address = address
        self.spawn = start
        self.progress = progress

    def start(self) -> ModelStoreAccess:
        data = self.state_dir / "modelstore"
        if data.exists():
            import shutil

            shutil.rmtree(data)
        data.mkdir(parents=True)
        access = ModelStoreAccess(endpoint=f"{self.address}:{free_port()}",
                                  access_key=f"lane-{secrets.token_hex(4)}",
                                  secret_key=secrets.token_urlsafe(24))
        self.spawn("minio", [
            str(self.minio), "server", str(data), "--quiet",
            "--address", access.endpoint,
            "--console-address", f"127.0.0.1:{free_port()}",
        ], {"MINIO_ROOT_USER": access.access_key, "MINIO_ROOT_PASSWORD": access.secret_key,
            "MINIO_BROWSER": "off", "MINIO_UPDATE": "off", "MINIO_CI_CD": "on",
            "MINIO_REGION": REGION, "HOME": str(data)})
        self._wait_ready(access)
        self._fill(access)
        access.save(self.state_dir)
        return access

    def _wait_ready(self, access: ModelStoreAccess) -> None:
        url = f"http://{access.endpoint}/minio/health/ready"

        def ready() -> bool:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)

        wait_until(ready, READY_TIMEOUT_SECONDS, f"MinIO at {url}",
                   lambda: log_tail(self.state_dir / "logs", "minio"), error=ModelStoreError)

    def _fill(self, access: ModelStoreAccess) -> None:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3", endpoint_url=f"http://{access.endpoint}", region_name=REGION,
            aws_access_key_id=access.access_key, aws_secret_access_key=access.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}))
        client.create_bucket(Bucket=BUCKET)
        files = model_files(self.models_dir)
        for key, path in files:
            client.upload_file(str(path), BUCKET, key)
        folders = sorted({key.rsplit("/", 1)[0] for key, _ in files})
        self.progress(f"model store: MinIO at {access.endpoint}, s3://{BUCKET}/ holds "
                      f"{len(files)} files ({', '.join(folders)})")
