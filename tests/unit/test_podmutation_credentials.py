"""Storage credentials from the pod's ServiceAccount Secrets, as injected by the pod mutation."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from kfserving_operator.api.config import OperatorConfig, parse_operator_config
from kfserving_operator.podmutation import (
    CredentialSources,
    MutationResult,
    mutate_pod,
    secret_names_to_fetch,
    service_account_name,
)
from tests.unit.test_podmutation import LOGGER, SOURCE_URI, make_pod

CONFIG = OperatorConfig()
ACCESS_KEY = "AKIAEXAMPLEKEYID"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLETOKEN"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(
    name: str, data: dict[str, str], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations or {}},
        "type": "Opaque",
        "data": {key: b64(value) for key, value in data.items()},
    }


def service_account(*secret_names: str, name: str = "sa") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": "default"},
        "secrets": [{"name": n} for n in secret_names],
    }


def s3_secret(name: str = "s3", annotations: dict[str, str] | None = None, **extra: str) -> Any:
    return secret(
        name,
        {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, **extra},
        annotations,
    )


def run(
    *secrets: dict[str, Any],
    sa: dict[str, Any] | None = None,
    config: OperatorConfig = CONFIG,
    annotations: dict[str, str] | None = None,
) -> MutationResult:
    if sa is None:
        sa = service_account(*(s["metadata"]["name"] for s in secrets))
    pod = make_pod(annotations or {SOURCE_URI: "s3://bucket/model"}, service_account="sa")
    sources = CredentialSources(sa, {s["metadata"]["name"]: s for s in secrets})
    return mutate_pod(pod, config, sources)


def init_env(result: MutationResult) -> list[dict[str, Any]]:
    (init,) = result.pod["spec"]["initContainers"]
    return list(init.get("env", []))


def ref(env: str, secret_name: str, key: str) -> dict[str, Any]:
    return {"name": env, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}


def value(env: str, text: str) -> dict[str, Any]:
    return {"name": env, "value": text}


def assert_no_secret_values(result: MutationResult) -> None:
    dumped = json.dumps(result.pod)
    for text in (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN):
        assert text not in dumped
        assert b64(text) not in dumped


# ---------------------------------------------------------------------------------------
# S3.


def test_s3_keys_are_secret_key_refs_never_values() -> None:
    result = run(s3_secret())
    assert init_env(result) == [
        ref("AWS_ACCESS_KEY_ID", "s3", "AWS_ACCESS_KEY_ID"),
        ref("AWS_SECRET_ACCESS_KEY", "s3", "AWS_SECRET_ACCESS_KEY"),
    ]
    for env in init_env(result):
        assert "value" not in env
    assert_no_secret_values(result)
    assert "S3 credentials from secret 's3'" in result.notes


def test_s3_endpoint_annotations() -> None:
    result = run(
        s3_secret(
            annotations={
                "serving.kubeflow.org/s3-endpoint": "minio-service.kubeflow:9000",
                "serving.kubeflow.org/s3-usehttps": "0",
                "serving.kubeflow.org/s3-region": "us-west-2",
                "serving.kubeflow.org/s3-useanoncredential": "false",
                "serving.kubeflow.org/s3-verifyssl": "0",
                "serving.kubeflow.org/s3-usevirtualbucket": "true",
            }
        )
    )
    assert init_env(result) == [
        ref("AWS_ACCESS_KEY_ID", "s3", "AWS_ACCESS_KEY_ID"),
        ref("AWS_SECRET_ACCESS_KEY", "s3", "AWS_SECRET_ACCESS_KEY"),
        value("S3_ENDPOINT", "minio-service.kubeflow:9000"),
        value("AWS_ENDPOINT_URL", "http://minio-service.kubeflow:9000"),
        value("S3_USE_HTTPS", "0"),
        value("AWS_REGION", "us-west-2"),
        value("AWS_DEFAULT_REGION", "us-west-2"),
        value("S3_VERIFY_SSL", "0"),
        value("awsAnonymousCredential", "false"),
        value("S3_USER_VIRTUAL_BUCKET", "true"),
    ]
    assert_no_secret_values(result)


def test_s3_endpoint_defaults_to_https() -> None:
    result = run(s3_secret(annotations={"serving.kubeflow.org/s3-endpoint": "s3.example.com"}))
    assert init_env(result)[2:] == [
        value("S3_ENDPOINT", "s3.example.com"),
        value("AWS_ENDPOINT_URL", "https://s3.example.com"),
    ]


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        (
            {"serving.kubeflow.org/s3-endpoint": "http://minio:9000"},
            ["minio:9000", "http://minio:9000", "0"],
        ),
        (
            {"serving.kubeflow.org/s3-endpoint": "https://minio:9000"},
            ["minio:9000", "https://minio:9000", "1"],
        ),
        (
            {
                "serving.kubeflow.org/s3-endpoint": "minio:9000",
                "serving.kubeflow.org/s3-usehttps": "1",
            },
            ["minio:9000", "https://minio:9000", "1"],
        ),
        (
            {
                "serving.kubeflow.org/s3-endpoint": "https://minio:9000",
                "serving.kubeflow.org/s3-usehttps": "false",
            },
            ["minio:9000", "http://minio:9000", "0"],
        ),
    ],
)
def test_s3_endpoint_scheme_and_usehttps(annotations: dict[str, str], expected: list[str]) -> None:
    endpoint, url, use_https = expected
    assert init_env(run(s3_secret(annotations=annotations)))[2:] == [
        value("S3_ENDPOINT", endpoint),
        value("AWS_ENDPOINT_URL", url),
        value("S3_USE_HTTPS", use_https),
    ]


def test_s3_settings_fall_back_to_config() -> None:
    config = parse_operator_config(
        {
            "credentials": json.dumps(
                {
                    "s3": {
                        "s3Endpoint": "minio.storage:9000",
                        "s3UseHttps": "0",
                        "s3Region": "eu-central-1",
                        "s3VerifySSL": "0",
                    }
                }
            )
        }
    ).config
    assert init_env(run(s3_secret(), config=config))[2:] == [
        value("S3_ENDPOINT", "minio.storage:9000"),
        value("AWS_ENDPOINT_URL", "http://minio.storage:9000"),
        value("S3_USE_HTTPS", "0"),
        value("AWS_REGION", "eu-central-1"),
        value("AWS_DEFAULT_REGION", "eu-central-1"),
        value("S3_VERIFY_SSL", "0"),
    ]
    # The Secret's annotations win over the config.
    overridden = run(
        s3_secret(
            annotations={
                "serving.kubeflow.org/s3-endpoint": "other:9000",
                "serving.kubeflow.org/s3-usehttps": "1",
                "serving.kubeflow.org/s3-region": "us-east-1",
            }
        ),
        config=config,
    )
    assert init_env(overridden)[2:] == [
        value("S3_ENDPOINT", "other:9000"),
        value("AWS_ENDPOINT_URL", "https://other:9000"),
        value("S3_USE_HTTPS", "1"),
        value("AWS_REGION", "us-east-1"),
        value("AWS_DEFAULT_REGION", "us-east-1"),
        value("S3_VERIFY_SSL", "0"),
    ]


def test_s3_session_token_is_a_secret_key_ref() -> None:
    result = run(s3_secret(AWS_SESSION_TOKEN=SESSION_TOKEN))
    assert init_env(result) == [
        ref("AWS_ACCESS_KEY_ID", "s3", "AWS_ACCESS_KEY_ID"),
        ref("AWS_SECRET_ACCESS_KEY", "s3", "AWS_SECRET_ACCESS_KEY"),
        ref("AWS_SESSION_TOKEN", "s3", "AWS_SESSION_TOKEN"),
    ]
    assert_no_secret_values(result)


def test_s3_custom_key_names_from_config() -> None:
    config = parse_operator_config(
        {
            "credentials": json.dumps(
                {
                    "s3": {
                        "s3AccessKeyIDName": "awsAccessKeyID",
                        "s3SecretAccessKeyName": "awsSecretAccessKey",
                    }
                }
            )
        }
    ).config
    custom = secret("custom", {"awsAccessKeyID": ACCESS_KEY, "awsSecretAccessKey": SECRET_KEY})
    result = run(custom, config=config)
    assert init_env(result) == [
        ref("AWS_ACCESS_KEY_ID", "custom", "awsAccessKeyID"),
        ref("AWS_SECRET_ACCESS_KEY", "custom", "awsSecretAccessKey"),
    ]
    # With the default key names the same Secret is not an S3 Secret.
    assert init_env(run(custom)) == []


def test_s3_secret_without_access_key_id_is_noted() -> None:
    result = run(secret("half", {"AWS_SECRET_ACCESS_KEY": SECRET_KEY}))
    assert init_env(result)[0] == ref("AWS_ACCESS_KEY_ID", "half", "AWS_ACCESS_KEY_ID")
    assert any("has no key 'AWS_ACCESS_KEY_ID'" in note for note in result.notes)


def test_string_data_secrets_are_understood() -> None:
    raw = {
        "metadata": {"name": "plain"},
        "stringData": {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
    }
    result = run(raw)
    assert [e["name"] for e in init_env(result)] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    assert_no_secret_values(result)


# ---------------------------------------------------------------------------------------
# GCS, Azure, HTTPS headers.


def test_gcs_secret_volume_and_env() -> None:
    result = run(secret("gcp", {"gcloud-application-credentials.json": "{}"}))
    (init,) = result.pod["spec"]["initContainers"]
    assert init["env"] == [
        value("GOOGLE_APPLICATION_CREDENTIALS", "/var/secrets/gcloud-application-credentials.json")
    ]
    assert init["volumeMounts"][-1] == {
        "name": "user-gcp-sa",
        "mountPath": "/var/secrets/",
        "readOnly": True,
    }
    assert result.pod["spec"]["volumes"][-1] == {
        "name": "user-gcp-sa",
        "secret": {"secretName": "gcp"},
    }


def test_gcs_file_name_from_config() -> None:
    config = parse_operator_config(
        {"credentials": json.dumps({"gcs": {"gcsCredentialFileName": "key.json"}})}
    ).config
    result = run(secret("gcp", {"key.json": "{}"}), config=config)
    assert init_env(result) == [value("GOOGLE_APPLICATION_CREDENTIALS", "/var/secrets/key.json")]


def test_azure_legacy_keys_set_both_generations_of_names() -> None:
    azure = secret(
        "az",
        {
            "AZ_SUBSCRIPTION_ID": "sub",
            "AZ_TENANT_ID": "tenant",
            "AZ_CLIENT_ID": "client",
            "AZ_CLIENT_SECRET": "shh",
        },
    )
    result = run(azure)
    assert init_env(result) == [
        ref("AZ_SUBSCRIPTION_ID", "az", "AZ_SUBSCRIPTION_ID"),
        ref("AZ_TENANT_ID", "az", "AZ_TENANT_ID"),
        ref("AZ_CLIENT_ID", "az", "AZ_CLIENT_ID"),
        ref("AZ_CLIENT_SECRET", "az", "AZ_CLIENT_SECRET"),
        ref("AZURE_SUBSCRIPTION_ID", "az", "AZ_SUBSCRIPTION_ID"),
        ref("AZURE_TENANT_ID", "az", "AZ_TENANT_ID"),
        ref("AZURE_CLIENT_ID", "az", "AZ_CLIENT_ID"),
        ref("AZURE_CLIENT_SECRET", "az", "AZ_CLIENT_SECRET"),
    ]
    assert "shh" not in json.dumps(result.pod)


def test_azure_current_keys_and_missing_ones() -> None:
    azure = secret(
        "az",
        {
            "AZURE_TENANT_ID": "tenant",
            "AZURE_CLIENT_ID": "client",
            "AZURE_CLIENT_SECRET": "shh",
            "AZURE_STORAGE_ACCESS_KEY": "key",
        },
    )
    result = run(azure, annotations={SOURCE_URI: "https://acct.blob.core.windows.net/c/m"})
    assert init_env(result) == [
        ref("AZ_TENANT_ID", "az", "AZURE_TENANT_ID"),
        ref("AZ_CLIENT_ID", "az", "AZURE_CLIENT_ID"),
        ref("AZ_CLIENT_SECRET", "az", "AZURE_CLIENT_SECRET"),
        ref("AZURE_TENANT_ID", "az", "AZURE_TENANT_ID"),
        ref("AZURE_CLIENT_ID", "az", "AZURE_CLIENT_ID"),
        ref("AZURE_CLIENT_SECRET", "az", "AZURE_CLIENT_SECRET"),
        ref("AZURE_STORAGE_ACCESS_KEY", "az", "AZURE_STORAGE_ACCESS_KEY"),
    ]
    assert "Azure secret 'az' has no AZ_SUBSCRIPTION_ID/AZURE_SUBSCRIPTION_ID; not set" in (
        result.notes
    )


def test_https_headers_env_named_after_the_host() -> None:
    headers = secret(
        "hdr",
        {"https-host": "models.example.com\n", "headers": '{"Authorization": "Bearer t0ken"}'},
    )
    result = run(headers, annotations={SOURCE_URI: "https://models.example.com/m.joblib"})
    assert init_env(result) == [ref("models.example.com-headers", "hdr", "headers")]
    assert "t0ken" not in json.dumps(result.pod)


def test_https_headers_for_two_hosts_combine() -> None:
    one = secret("one", {"https-host": "a.example.com", "headers": "{}"})
    two = secret("two", {"https-host": "b.example.com", "headers": "{}"})
    again = secret("again", {"https-host": "a.example.com", "headers": "{}"})
    result = run(one, two, again)
    assert init_env(result) == [
        ref("a.example.com-headers", "one", "headers"),
        ref("b.example.com-headers", "two", "headers"),
    ]
    assert any("'again'" in note and "skipped" in note for note in result.notes)


def test_https_secret_problems_are_noted_not_fatal() -> None:
    no_headers = secret("no-headers", {"https-host": "a.example.com"})
    broken = {"metadata": {"name": "broken"}, "data": {"https-host": "!!!", "headers": "e30="}}
    result = run(no_headers, broken)
    assert init_env(result) == []
    assert any("'no-headers'" in n and "no 'headers' key" in n for n in result.notes)
    assert any("'broken'" in n and "not valid base64" in n for n in result.notes)


# ---------------------------------------------------------------------------------------
# Several Secrets, missing objects, the agent.


def test_first_secret_of_a_kind_wins_and_kinds_combine() -> None:
    first = s3_secret("first", annotations={"serving.kubeflow.org/s3-region": "eu-west-1"})
    second = s3_secret("second", annotations={"serving.kubeflow.org/s3-endpoint": "x:9000"})
    gcs = secret("gcp", {"gcloud-application-credentials.json": "{}"})
    result = run(first, gcs, second)
    assert init_env(result) == [
        ref("AWS_ACCESS_KEY_ID", "first", "AWS_ACCESS_KEY_ID"),
        ref("AWS_SECRET_ACCESS_KEY", "first", "AWS_SECRET_ACCESS_KEY"),
        value("AWS_REGION", "eu-west-1"),
        value("AWS_DEFAULT_REGION", "eu-west-1"),
        value("GOOGLE_APPLICATION_CREDENTIALS", "/var/secrets/gcloud-application-credentials.json"),
    ]
    assert any(
        "secret 'second' holds S3 credentials, but secret 'first'" in note for note in result.notes
    )


def test_s3_takes_precedence_over_gcs_within_one_secret() -> None:
    both = secret(
        "both",
        {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "gcloud-application-credentials.json": "{}",
        },
    )
    result = run(both)
    assert [e["name"] for e in init_env(result)] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    assert [v["name"] for v in result.pod["spec"]["volumes"]] == ["kfserving-provision-location"]


def test_missing_service_account_injects_nothing() -> None:
    pod = make_pod({SOURCE_URI: "s3://bucket/model"}, service_account="ghost")
    result = mutate_pod(pod, CONFIG, CredentialSources(None, {}))
    (init,) = result.pod["spec"]["initContainers"]
    assert "env" not in init
    assert "service account 'ghost' not found; no storage credentials injected" in result.notes


def test_missing_and_unrelated_secrets_are_skipped() -> None:
    sa = service_account("gone", "token", "s3")
    token = secret("token", {"token": "abc", "ca.crt": "pem"})
    result = run(token, s3_secret(), sa=sa)
    assert [e["name"] for e in init_env(result)] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    assert "secret 'gone' listed by service account 'sa' not found; skipped" in result.notes
    assert (
        "secret 'token' has none of the S3, GCS, Azure or https-host keys; skipped" in result.notes
    )


def test_service_account_without_secrets() -> None:
    result = run(sa={"metadata": {"name": "sa"}})
    assert init_env(result) == []
    assert "service account 'sa' lists no secrets; no storage credentials injected" in result.notes


def test_agent_receives_credentials_and_keeps_queue_proxy_env() -> None:
    gcs = secret("gcp", {"gcloud-application-credentials.json": "{}"})
    result = run(s3_secret(), gcs, annotations={LOGGER: "true", SOURCE_URI: "gs://b/m"})
    (agent,) = [c for c in result.pod["spec"]["containers"] if c["name"] == "agent"]
    names = [e["name"] for e in agent["env"]]
    assert names == [
        "SERVING_NAMESPACE",
        "USER_PORT",
        "SERVING_POD",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ]
    assert agent["volumeMounts"] == [
        {"name": "user-gcp-sa", "mountPath": "/var/secrets/", "readOnly": True}
    ]
    # The Secret volume is added once although two containers mount it.
    assert [v["name"] for v in result.pod["spec"]["volumes"]] == [
        "kfserving-provision-location",
        "user-gcp-sa",
    ]
    assert_no_secret_values(result)


def test_env_already_set_on_the_agent_is_kept() -> None:
    pod = make_pod({LOGGER: "true"}, service_account="sa")
    pod["spec"]["containers"][1]["env"].append(value("AWS_ACCESS_KEY_ID", "from-queue-proxy"))
    sources = CredentialSources(service_account("s3"), {"s3": s3_secret()})
    result = mutate_pod(pod, CONFIG, sources)
    (agent,) = [c for c in result.pod["spec"]["containers"] if c["name"] == "agent"]
    assert value("AWS_ACCESS_KEY_ID", "from-queue-proxy") in agent["env"]
    assert [e["name"] for e in agent["env"]].count("AWS_ACCESS_KEY_ID") == 1
    assert "container 'agent' already sets AWS_ACCESS_KEY_ID; kept its value" in result.notes


def test_credentials_are_not_consulted_when_nothing_is_injected() -> None:
    pod = make_pod({}, service_account="sa")
    result = mutate_pod(pod, CONFIG, CredentialSources(None, {}))
    assert result.notes == ()


# ---------------------------------------------------------------------------------------
# What the shell reads.


def test_service_account_name() -> None:
    assert service_account_name(make_pod()) == "default"
    assert service_account_name(make_pod(service_account="models")) == "models"
    assert service_account_name({"spec": {"serviceAccount": "legacy"}}) == "legacy"
    assert service_account_name({}) == "default"


def test_secret_names_to_fetch() -> None:
    sa = {
        "secrets": [
            {"name": "b"},
            {"name": "a"},
            {"name": "b"},
            {"namespace": "x"},
            "junk",
            {"name": ""},
        ],
        "imagePullSecrets": [{"name": "registry"}],
    }
    assert secret_names_to_fetch(sa) == ["b", "a"]
    assert secret_names_to_fetch(None) == []
    assert secret_names_to_fetch({"metadata": {"name": "sa"}}) == []
