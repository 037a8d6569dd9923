"""The published KFServing 0.6.1 Python SDK against the operator, as its users drive it.

The SDK runs from its own virtualenv (tests/support/sdk.py), where the e2e cluster is reachable
(inside the Knative lane's network namespace, or against the external cluster). Knative's own
controllers make each revision Ready; the test only waits, as an SDK user would.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, KubectlError, wait_for
from tests.support.sdk import SdkError, sdk_call, sdk_command

pytestmark = pytest.mark.usefixtures("operator")

MODEL = "gs://kfserving-samples/models/sklearn/iris"
CANARY_MODEL = "gs://kfserving-samples/models/sklearn/iris-v2"


def _predictor_traffic(isvc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(isvc.get("status", {}).get("components", {}).get("predictor", {})
                .get("traffic") or [])


def test_sdk_lifecycle(cluster: Cluster, namespace: str, tmp_path: Path,
                       report: Any) -> None:
    """set_credentials, create, get(watch=True), wait_isvc_ready, patch to a canary,
    replace to promote, delete: each through the SDK, each checked on the cluster."""
    name, ksvc = "sdk-iris", "sdk-iris-predictor-default"

    # set_credentials: a Secret with the S3 keys and endpoint, attached to a ServiceAccount
    # (key names from inferenceservice-config in kfserving-system, or the SDK's defaults).
    credentials = tmp_path / "credentials"
    # The SDK puts the file's values into the Secret's `data` as they are, so the API server
    # base64-decodes them; AWS-shaped keys are valid base64 and come back unchanged.
    key_id, secret_key = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    credentials.write_text(f"[default]\naws_access_key_id = {key_id}\n"
                           f"aws_secret_access_key = {secret_key}\n")
    sdk_call(cluster, "set_credentials", namespace=namespace, storage_type="s3",
             credentials_file=str(credentials), service_account="sdk-sa",
             extra={"s3_endpoint": "minio.example:9000", "s3_use_https": "0"})
    account = cluster.get_json("serviceaccount", "sdk-sa", "-n", namespace)
    secret_name = account["secrets"][0]["name"]
    secret = cluster.get_json("secret", secret_name, "-n", namespace)
    assert secret["data"] == {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret_key}
    assert secret["metadata"]["annotations"]["serving.kubeflow.org/s3-endpoint"] == \
        "minio.example:9000"

    # create: admitted and defaulted by the operator's webhook.
    created = sdk_call(cluster, "create", name=name, namespace=namespace,
                       storage_uri=MODEL, service_account="sdk-sa")
    assert created["spec"]["predictor"]["sklearn"]["protocolVersion"] == "v1"  # defaulted

    # get(watch=True): the SDK's watch table, which ends when the service is Ready.
    watcher = subprocess.Popen(sdk_command(cluster, "get", name=name, namespace=namespace,
                                           watch=True, timeout_seconds=90),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = watcher.communicate(timeout=120)
    assert watcher.returncode == 0, err
    assert '"error"' not in out.splitlines()[-1], out
    ready_rows = [line for line in out.splitlines() if line.split()[:2] == [name, "True"]]
    assert ready_rows, f"the watch never showed {name} Ready:\n{out}"
    assert f"http://{name}.{namespace}." in ready_rows[-1]
    report(f"SDK watch: {ready_rows[-1].strip()}")

    # wait_isvc_ready returns at once for a Ready service; get reads the full object back.
    assert sdk_call(cluster, "wait_isvc_ready", name=name, namespace=namespace,
                    timeout_seconds=30, polling_interval=1) is True
    isvc = sdk_call(cluster, "get", name=name, namespace=namespace)
    assert isvc["status"]["url"].startswith(f"http://{name}.{namespace}.")
    assert [t["percent"] for t in _predictor_traffic(isvc)] == [100]

    # patch to a canary: 20 % to a new model, 80 % stays on the previous revision.
    sdk_call(cluster, "patch", name=name, namespace=namespace, storage_uri=CANARY_MODEL,
             service_account="sdk-sa", canary_percent=20)
    sdk_call(cluster, "wait_isvc_ready", name=name, namespace=namespace,
             timeout_seconds=60, polling_interval=1)

    def split() -> list[tuple[bool, int]] | None:
        traffic = _predictor_traffic(sdk_call(cluster, "get", name=name,
                                              namespace=namespace))
        shares = sorted((bool(t.get("latestRevision")), int(t["percent"])) for t in traffic)
        return shares if shares == [(False, 80), (True, 20)] else None
    assert wait_for(split, timeout=60, interval=1, message="the 80/20 canary split")

    # replace to promote: the canary's model without canaryTrafficPercent takes all traffic.
    sdk_call(cluster, "replace", name=name, namespace=namespace, storage_uri=CANARY_MODEL,
             service_account="sdk-sa")

    def promoted() -> bool:
        isvc = sdk_call(cluster, "get", name=name, namespace=namespace)
        traffic = _predictor_traffic(isvc)
        return (len(traffic) == 1 and traffic[0]["percent"] == 100
                and traffic[0].get("latestRevision") is True
                and "canaryTrafficPercent" not in isvc["spec"]["predictor"])
    assert wait_for(promoted, timeout=60, interval=1, message="promotion to 100 %")
    assert sdk_call(cluster, "is_isvc_ready", name=name, namespace=namespace) is True

    # delete: the InferenceService goes, and its Knative Service with it (garbage collection).
    sdk_call(cluster, "delete", name=name, namespace=namespace)
    assert wait_for(lambda: _gone(cluster, name, namespace), timeout=30, interval=1,
                    message="the InferenceService to be deleted")

    def ksvc_gone() -> bool:
        try:
            cluster.kubectl("get", "services.serving.knative.dev", ksvc, "-n", namespace)
        except KubectlError:
            return True
        return False
    assert wait_for(ksvc_gone, timeout=60, interval=0.5, message="the ksvc to be collected")


def _gone(cluster: Cluster, name: str, namespace: str) -> bool:
    try:
        sdk_call(cluster, "get", name=name, namespace=namespace)
    except SdkError as exc:
        return "Not Found" in str(exc)  # the SDK re-raises the API's 404 as a RuntimeError
    return False
