"""The published KFServing 0.6.1 SDK on a raw InferenceService: create, wait_isvc_ready,
get, delete. The SDK cannot set annotations, so the config's default mode is RawDeployment
here (which the operator records in the status on the first reconcile)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.test_raw_mode import set_config, wait_default_mode
from tests.integration.test_reconcile import get_or_none
from tests.support.cluster import Cluster, wait_for
from tests.support.sdk import sdk_call

pytestmark = pytest.mark.usefixtures("operator")


@pytest.fixture
def raw_default(cluster: Cluster) -> Iterator[None]:
    set_config(cluster, mode="RawDeployment")
    try:
        # Admission stamps the default into the new InferenceService: it has to be read first.
        wait_default_mode(cluster, "RawDeployment")
        yield
    finally:
        set_config(cluster)
        wait_default_mode(cluster, "Serverless")


@pytest.mark.usefixtures("raw_default")
def test_sdk_create_wait_delete_raw(cluster: Cluster, namespace: str) -> None:
    name, deployment = "sdk-raw", "sdk-raw-predictor-default"
    created = sdk_call(cluster, "create", name=name, namespace=namespace,
                       storage_uri="gs://kfserving-samples/models/sklearn/iris")
    assert created["spec"]["predictor"]["sklearn"]["protocolVersion"] == "v1"
    assert sdk_call(cluster, "wait_isvc_ready", name=name, namespace=namespace,
                    timeout_seconds=180, timeout=240) is True
    isvc = sdk_call(cluster, "get", name=name, namespace=namespace)
    assert isvc["status"]["deploymentMode"] == "RawDeployment"
    assert isvc["status"]["url"] == f"http://{name}-{namespace}.example.com"
    # every traffic entry carries latestRevision and percent, as the SDK's watch reads them
    traffic = isvc["status"]["components"]["predictor"]["traffic"]
    assert traffic and all("latestRevision" in t and "percent" in t for t in traffic)
    # the SDK's watch table ends once Ready; it raises (SdkError) on a status it cannot read
    sdk_call(cluster, "get", name=name, namespace=namespace, watch=True, timeout_seconds=30)
    assert get_or_none(cluster, "deployment", deployment, "-n", namespace) is not None
    assert get_or_none(cluster, "services.serving.knative.dev", deployment, "-n",
                       namespace) is None
    sdk_call(cluster, "delete", name=name, namespace=namespace)
    wait_for(lambda: get_or_none(cluster, "deployment", deployment, "-n", namespace) is None,
             60, interval=1, message="the Deployment garbage-collected with its owner")
