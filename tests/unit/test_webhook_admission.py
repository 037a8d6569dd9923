"""The pure AdmissionReview handlers and the webhook configurations."""

from __future__ import annotations

import base64
import json
from typing import Any

import jsonpatch
import pytest

from kfserving_operator.api import pipeline
from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.podmutation.credentials import CredentialSources
from kfserving_operator.webhooks import admission, registration

CONFIG = OperatorConfig()


def _review(obj: dict[str, Any], operation: str = "CREATE", namespace: str = "ns") -> dict[
        str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "abc-123", "operation": operation, "namespace": namespace,
                    "object": obj},
    }


def _isvc(predictor: dict[str, Any], name: str = "iris") -> dict[str, Any]:
    return {"apiVersion": "serving.kubeflow.org/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": "ns"}, "spec": {"predictor": predictor}}


def _patched(obj: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    patch = json.loads(base64.b64decode(response["response"]["patch"]))
    result: dict[str, Any] = jsonpatch.apply_patch(obj, patch)
    return result


def test_defaulting_fills_container_name_version_and_resources() -> None:
    obj = _isvc({"sklearn": {"storageUri": "gs://bucket/model"}})
    response = admission.review_inference_service_defaulting(_review(obj), CONFIG)
    assert response["response"]["allowed"] is True
    assert response["response"]["uid"] == "abc-123"
    sklearn = _patched(obj, response)["spec"]["predictor"]["sklearn"]
    assert sklearn["name"] == "kfserving-container"
    assert sklearn["protocolVersion"] == "v1"
    assert sklearn["runtimeVersion"] == CONFIG.predictors.sklearn.v1.default_image_version
    assert sklearn["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}


def test_defaulting_an_already_defaulted_object_patches_nothing() -> None:
    obj = _isvc({"sklearn": {"storageUri": "gs://bucket/model"}})
    once = _patched(obj, admission.review_inference_service_defaulting(_review(obj), CONFIG))
    again = admission.review_inference_service_defaulting(_review(once), CONFIG)
    assert "patch" not in again["response"]


def test_defaulting_leaves_unparseable_objects_to_the_validator() -> None:
    obj = _isvc({"sklearn": {"storageUri": "gs://b/m", "bogusField": 1}})
    response = admission.review_inference_service_defaulting(_review(obj), CONFIG)
    assert response["response"] == {"uid": "abc-123", "allowed": True}


def test_validation_denies_with_every_field_path() -> None:
    obj = _isvc({"sklearn": {"storageUri": "ftp://x/y"}, "canaryTrafficPercent": 120})
    response = admission.review_inference_service_validation(_review(obj), CONFIG)["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 422
    message = response["status"]["message"]
    assert message.startswith("InferenceService 'iris' is invalid: ")
    assert "spec.predictor.sklearn.storageUri" in message
    assert "spec.predictor.canaryTrafficPercent" in message


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT"])
def test_validation_never_blocks_other_operations(operation: str) -> None:
    obj = _isvc({"sklearn": {"storageUri": "ftp://x/y"}})
    response = admission.review_inference_service_validation(_review(obj, operation), CONFIG)
    assert response["response"]["allowed"] is True


def test_update_reruns_the_create_rules() -> None:
    obj = _isvc({"sklearn": {"storageUri": "gs://b/m"}, "minReplicas": 3, "maxReplicas": 2})
    response = admission.review_inference_service_validation(_review(obj, "UPDATE"), CONFIG)
    assert response["response"]["allowed"] is False
    assert "spec.predictor.minReplicas" in response["response"]["status"]["message"]


def _pod(labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": labels, "annotations": annotations},
            "spec": {"containers": [{"name": "kfserving-container", "image": "m:1"}]}}


def test_pod_out_of_scope_is_admitted_without_patch() -> None:
    pod = _pod({}, {"internal.serving.kubeflow.org/storage-initializer-sourceuri": "gs://b/m"})
    response, _ = admission.review_pod_mutation(_review(pod), CONFIG, CredentialSources())
    assert response["response"] == {"uid": "abc-123", "allowed": True}


def test_pod_in_scope_gets_the_storage_initializer() -> None:
    pod = _pod({"serving.kubeflow.org/inferenceservice": "iris"},
               {"internal.serving.kubeflow.org/storage-initializer-sourceuri": "gs://b/m"})
    response, _ = admission.review_pod_mutation(_review(pod), CONFIG, CredentialSources())
    mutated = _patched(pod, response)
    init = mutated["spec"]["initContainers"][0]
    assert init["name"] == "storage-initializer"
    assert init["args"] == ["gs://b/m", "/mnt/models"]


def test_pod_with_bad_uri_is_refused_with_the_annotation_named() -> None:
    pod = _pod({"serving.kubeflow.org/inferenceservice": "iris"},
               {"internal.serving.kubeflow.org/storage-initializer-sourceuri": "ftp://b/m"})
    response, _ = admission.review_pod_mutation(_review(pod), CONFIG, CredentialSources())
    assert response["response"]["allowed"] is False
    assert "storage-initializer-sourceuri" in response["response"]["status"]["message"]


def test_pod_webhook_is_scoped_to_labelled_pods_outside_the_operator_namespace() -> None:
    def url(path: str) -> dict[str, Any]:
        return registration.url_client_config("https://127.0.0.1:9443", path, b"CA")

    mutating = registration.mutating_configuration(url, "kfserving-system")
    pods = next(h for h in mutating["webhooks"] if h["name"] == registration.POD_MUTATOR_NAME)
    assert pods["objectSelector"] == {"matchExpressions": [
        {"key": "serving.kubeflow.org/inferenceservice", "operator": "Exists"}]}
    assert pods["namespaceSelector"]["matchExpressions"][0]["values"] == ["kfserving-system"]
    assert pods["failurePolicy"] == "Fail"
    assert pods["clientConfig"]["url"] == "https://127.0.0.1:9443/mutate-pods"
    assert base64.b64decode(pods["clientConfig"]["caBundle"]) == b"CA"
    validating = registration.validating_configuration(url)
    rules = validating["webhooks"][0]["rules"][0]
    assert "DELETE" not in rules["operations"]
    assert rules["apiGroups"] == ["serving.kubeflow.org"]


@pytest.mark.parametrize("body", [b"[]", b"null", b'"x"', b'{"request": "x"}',
                                  b'{"request": {"object": []}}', b"{no"])
def test_what_is_not_a_review_is_refused_with_a_reason(body: bytes) -> None:
    from kfserving_operator.webhooks.server import BadReview, decode_review

    with pytest.raises(BadReview):
        decode_review(body)


def test_deep_reviews_decode_and_name_the_deep_field() -> None:
    from kfserving_operator.webhooks.server import decode_review, too_deep

    deep = '{"a":' * 5000 + "1" + "}" * 5000
    body = ('{"request": {"uid": "u", "object": {"metadata": {"name": "x"}, "spec": '
            + deep + "}}}").encode()
    review = decode_review(body)
    path = too_deep(review)
    assert path is not None and path.startswith("spec.a.a")
    assert too_deep(decode_review(json.dumps(_review(_isvc({"sklearn": {}}))).encode())) is None


def test_validation_after_defaulting_reuses_the_defaulting_result_only_for_that_object() -> None:
    obj = _isvc({"sklearn": {"storageUri": "gs://bucket/model"}})
    defaulted = _patched(obj, admission.review_inference_service_defaulting(_review(obj), CONFIG))
    assert pipeline.review_key(defaulted, defaulted["spec"]) in pipeline.RECENT
    answer = admission.review_inference_service_validation(_review(defaulted), CONFIG)
    assert answer["response"]["allowed"] is True
    assert pipeline.review_key(defaulted, defaulted["spec"]) not in pipeline.RECENT

    # The same object changed after defaulting (another webhook, say) is validated afresh.
    admission.review_inference_service_defaulting(_review(obj), CONFIG)
    broken = json.loads(json.dumps(defaulted))
    broken["spec"]["predictor"]["sklearn"]["storageUri"] = "ftp://nowhere/model"
    answer = admission.review_inference_service_validation(_review(broken), CONFIG)
    assert answer["response"]["allowed"] is False
    assert "storageUri" in answer["response"]["status"]["message"]
