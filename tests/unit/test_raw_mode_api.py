"""Raw deployment mode in the API: choosing the mode, its config, and its admission rules."""

from __future__ import annotations

import base64
import json
from typing import Any

import jsonpatch
import pytest

from kfserving_operator.api import OperatorConfig, validate_inference_service_dict
from kfserving_operator.api.config import parse_operator_config
from kfserving_operator.api.constants import DEPLOYMENT_MODE_ANNOTATION as MODE
from kfserving_operator.api.deployment_mode import mode_change_error, normalise_mode, resolve_mode
from kfserving_operator.api.domain_template import (
    HostValues,
    domain_template_error,
    host_error,
    render_host,
)
from kfserving_operator.api.raw_admission import mode_change_errors
from kfserving_operator.webhooks.admission import (
    review_inference_service_defaulting,
    review_inference_service_validation,
)

CONFIG = OperatorConfig()


def _config(**ingress: Any) -> OperatorConfig:
    return OperatorConfig.model_validate({"ingress": {**CONFIG.ingress.model_dump(), **ingress}})


RAW_DEFAULT = OperatorConfig.model_validate({"deploy": {"defaultDeploymentMode": "RawDeployment"}})
GATEWAY = _config(enable_gateway_api=True)


def _isvc(mode: str | None = "RawDeployment", name: str = "model", status: Any = None,
          labels: dict[str, str] | None = None, **predictor: Any) -> dict[str, Any]:
    annotations = {MODE: mode} if mode is not None else {}
    obj: dict[str, Any] = {
        "apiVersion": "serving.kubeflow.org/v1beta1", "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations,
                     **({"labels": labels} if labels else {})},
        "spec": {"predictor": {"sklearn": {"storageUri": "gs://bucket/model"}, **predictor}},
    }
    if status is not None:
        obj["status"] = status
    return obj


def _messages(obj: dict[str, Any], config: OperatorConfig = CONFIG) -> dict[str, str]:
    return {e.path: e.message for e in validate_inference_service_dict(obj, config)}


@pytest.mark.parametrize(("spelling", "mode"), [
    ("Serverless", "Serverless"), ("Knative", "Serverless"),
    ("RawDeployment", "RawDeployment"), ("Standard", "RawDeployment"),
    ("raw", None), ("", None), (None, None),
])
def test_mode_spellings(spelling: str | None, mode: str | None) -> None:
    assert normalise_mode(spelling) == mode


def test_mode_resolution_order() -> None:
    assert resolve_mode(_isvc(None), "Serverless") == "Serverless"
    assert resolve_mode(_isvc(None), "Standard") == "RawDeployment"
    assert resolve_mode(_isvc("Standard"), "Serverless") == "RawDeployment"
    # The mode recorded in the status wins over both: it is fixed once served.
    recorded = _isvc("Serverless", status={"deploymentMode": "RawDeployment"})
    assert resolve_mode(recorded, "Serverless") == "RawDeployment"


def test_config_deploy_key() -> None:
    result = parse_operator_config({"deploy": '{"defaultDeploymentMode": "Standard"}'})
    assert result.config.deploy.default_deployment_mode == "RawDeployment"
    bad = parse_operator_config({"deploy": '{"defaultDeploymentMode": "Fast"}'})
    assert [p.key for p in bad.problems if p.key == "deploy"] == ["deploy"]
    assert bad.config.deploy.default_deployment_mode == "Serverless"
    # KFServing's own ConfigMap has no deploy key: its absence is no problem.
    assert "deploy" not in {p.key for p in parse_operator_config({}).problems}


def test_unknown_mode_is_refused_naming_the_annotation() -> None:
    errors = _messages(_isvc("Raw"))
    assert list(errors) == [f"metadata.annotations[{MODE}]"]
    assert "RawDeployment" in errors[f"metadata.annotations[{MODE}]"]


def test_min_replicas_zero_refused_in_raw_mode_only() -> None:
    errors = _messages(_isvc(minReplicas=0))
    assert "cannot scale to zero" in errors["spec.predictor.minReplicas"]
    assert _messages(_isvc("Serverless", minReplicas=0)) == {}
    assert "spec.predictor.minReplicas" in _messages(_isvc(None, minReplicas=0), RAW_DEFAULT)


def test_scale_metric_rules_in_raw_mode() -> None:
    # cpu and memory need Knative's HPA class annotation in Serverless mode, not in raw mode.
    assert _messages(_isvc(scaleMetric="cpu", scaleTarget=50)) == {}
    assert "spec.predictor.scaleMetric" in _messages(_isvc("Serverless", scaleMetric="cpu"))
    errors = _messages(_isvc(scaleMetric="concurrency"))
    assert "must be cpu or memory in RawDeployment mode" in errors["spec.predictor.scaleMetric"]


def test_canary_needs_gateway_api_routes() -> None:
    errors = _messages(_isvc(canaryTrafficPercent=20))
    assert "Ingress cannot split traffic" in errors["spec.predictor.canaryTrafficPercent"]
    assert _messages(_isvc(canaryTrafficPercent=20), GATEWAY) == {}
    assert _messages(_isvc(canaryTrafficPercent=100)) == {}
    no_routes = _config(enable_gateway_api=True, disable_ingress_creation=True)
    errors = _messages(_isvc(canaryTrafficPercent=20), no_routes)
    assert "none is made here" in errors["spec.predictor.canaryTrafficPercent"]


def test_autoscaler_class_is_checked() -> None:
    obj = _isvc()
    obj["metadata"]["annotations"]["serving.kubeflow.org/autoscalerClass"] = "keda"
    assert "must be one of hpa, none, external" in _messages(obj)[
        "metadata.annotations[serving.kubeflow.org/autoscalerClass]"]


def test_long_names_refused_for_pod_labels_and_hosts() -> None:
    errors = _messages(_isvc(name="m" * 42))
    assert "pod label value" in errors["metadata.name"]
    # The host label "<name>-<namespace>" would pass 63 characters: refused while a route is
    # made, allowed when none is.
    long_ns = _isvc(name="m" * 38)
    long_ns["metadata"]["namespace"] = "n" * 30
    assert "not a valid DNS name" in _messages(long_ns)["metadata.name"]
    assert _messages(long_ns, _config(disable_ingress_creation=True)) == {}


def test_mode_change_refused_on_update() -> None:
    old = _isvc("Serverless", status={"deploymentMode": "Serverless"})
    errors = mode_change_errors(_isvc("RawDeployment"), old, CONFIG)
    assert [e.path for e in errors] == [f"metadata.annotations[{MODE}]"]
    assert "served as Serverless" in errors[0].message
    # Same mode in another spelling, or dropping the annotation once the mode is recorded.
    assert mode_change_errors(_isvc("Knative"), old, CONFIG) == []
    assert mode_change_errors(_isvc(None, status={"deploymentMode": "Serverless"}), old,
                              CONFIG) == []
    # Not yet recorded: the old annotation is what counts.
    assert mode_change_error(_isvc(None), _isvc("RawDeployment"), "Serverless") is not None
    assert mode_change_errors(_isvc("RawDeployment"), None, CONFIG) == []


def _defaulted(obj: dict[str, Any], config: OperatorConfig, operation: str = "CREATE",
               old: dict[str, Any] | None = None) -> dict[str, Any]:
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
              "request": {"uid": "u", "operation": operation, "object": obj,
                          **({"oldObject": old} if old else {})}}
    response = review_inference_service_defaulting(review, config)["response"]
    assert response["allowed"] is True
    if "patch" not in response:
        return obj
    patched: dict[str, Any] = jsonpatch.apply_patch(
        obj, json.loads(base64.b64decode(response["patch"])))
    return patched


@pytest.mark.parametrize("annotations", [None, {}, {"team": "a"}])
@pytest.mark.parametrize(("config", "mode"), [(CONFIG, "Serverless"),
                                              (RAW_DEFAULT, "RawDeployment")])
def test_create_stamps_the_default_mode(annotations: dict[str, str] | None,
                                        config: OperatorConfig, mode: str) -> None:
    obj = _isvc(None)
    if annotations is None:
        del obj["metadata"]["annotations"]
    else:
        obj["metadata"]["annotations"] = dict(annotations)
    stamped = _defaulted(obj, config)
    assert stamped["metadata"]["annotations"] == {**(annotations or {}), MODE: mode}
    assert stamped["spec"]["predictor"]["sklearn"]["name"] == "kfserving-container"
    # Stamped once: a later default no longer decides, and defaulting again changes nothing.
    other = CONFIG if config is RAW_DEFAULT else RAW_DEFAULT
    assert resolve_mode(stamped, other.deploy.default_deployment_mode) == mode
    assert _defaulted(stamped, other) is stamped


@pytest.mark.parametrize("given", ["RawDeployment", "Knative", "Standard", "Bogus"])
def test_create_keeps_a_given_annotation(given: str) -> None:
    stamped = _defaulted(_isvc(given), RAW_DEFAULT)
    assert stamped["metadata"]["annotations"] == {MODE: given}


def test_update_is_not_stamped() -> None:
    """An InferenceService from before the stamp keeps what decided its mode (its status)."""
    old = _isvc(None, status={"deploymentMode": "Serverless"})
    obj = _defaulted(_isvc(None, status={"deploymentMode": "Serverless"}), RAW_DEFAULT,
                     operation="UPDATE", old=old)
    assert MODE not in obj["metadata"]["annotations"]
    review = {"request": {"uid": "u", "operation": "UPDATE", "object": obj, "oldObject": old}}
    assert review_inference_service_validation(review, RAW_DEFAULT)["response"]["allowed"]


def test_stamped_object_is_validated_as_stamped() -> None:
    """The validating webhook sees the stamped annotation: a raw-only rule applies."""
    obj = _defaulted(_isvc(None, minReplicas=0), RAW_DEFAULT)
    review = {"request": {"uid": "u", "operation": "CREATE", "object": obj}}
    response = review_inference_service_validation(review, RAW_DEFAULT)["response"]
    assert response["allowed"] is False
    assert "minReplicas" in response["status"]["message"]


def test_domain_template() -> None:
    values = HostValues("model", "ns", "example.com", {"team": "a"}, {"tier": "b"})
    assert render_host(CONFIG.ingress.domain_template, values) == "model-ns.example.com"
    template = '{{ .Name }}.{{ index .Annotations "team" }}.{{index .Labels "tier"}}.io'
    assert render_host(template, values) == "model.a.b.io"
    assert domain_template_error("{{ .Nme }}.x") is not None
    assert domain_template_error("{{ .Name }") is not None
    assert host_error("a" * 64 + ".example.com") is not None
    assert host_error("Model.example.com") is not None
    assert host_error("model-ns.example.com") is None
