"""Storage URI classification for the storage initializer."""

from __future__ import annotations

import pytest

from kfserving_operator.podmutation import PodMutationError, StorageSource, parse_storage_uri


@pytest.mark.parametrize(
    ("uri", "kind", "download", "claim"),
    [
        ("gs://bucket/model", "gs", "gs://bucket/model", None),
        ("s3://bucket/a/b", "s3", "s3://bucket/a/b", None),
        ("pvc://claim/a/b", "pvc", "/mnt/pvc/a/b", "claim"),
        ("pvc://my.claim-1", "pvc", "/mnt/pvc/", "my.claim-1"),
        ("file:///models/x", "file", "file:///models/x", None),
        ("http://host/m.tar.gz", "http", "http://host/m.tar.gz", None),
        ("https://host/m.zip", "https", "https://host/m.zip", None),
        (
            "https://acct.blob.core.windows.net/container/m",
            "azure-blob",
            "https://acct.blob.core.windows.net/container/m",
            None,
        ),
        ("hdfs://nn:9000/m", "hdfs", "hdfs://nn:9000/m", None),
        ("webhdfs://nn:9870/m", "webhdfs", "webhdfs://nn:9870/m", None),
        ("/mnt/local/model", "local", "/mnt/local/model", None),
        ("relative/model", "local", "relative/model", None),
        ("weird:name", "local", "weird:name", None),
    ],
)
def test_allowed_uris(uri: str, kind: str, download: str, claim: str | None) -> None:
    assert parse_storage_uri(uri, source="storageUri") == StorageSource(
        uri=uri, kind=kind, download_uri=download, pvc_claim=claim
    )


def test_error_names_the_source_and_what_is_allowed() -> None:
    with pytest.raises(PodMutationError) as error:
        parse_storage_uri("oci://registry/model", source="spec.predictor.storageUri")
    assert str(error.value) == (
        "spec.predictor.storageUri: storage URI 'oci://registry/model' has the unsupported "
        "scheme 'oci://'. Allowed storage URIs: gs://, s3://, pvc://<claim>/<path>, file://, "
        "http://, https:// (including Azure Blob https://<account>.blob.core.windows.net/...), "
        "hdfs://, webhdfs://, or a local path without a scheme"
    )
    assert error.value.message == str(error.value)


@pytest.mark.parametrize(
    "uri",
    ["pvc://", "pvc:///x", "pvc://UPPER/x", "pvc://a/../b", "gs://", "S3://b/m", "s3:bucket/m"],
)
def test_refused_uris(uri: str) -> None:
    with pytest.raises(PodMutationError):
        parse_storage_uri(uri, source="x")
