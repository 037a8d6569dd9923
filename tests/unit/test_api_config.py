"""The inferenceservice-config ConfigMap as typed data: full, partial, malformed and changed."""

from __future__ import annotations

import json

import pytest

from kfserving_operator.api import InferenceService, default_inference_service
from kfserving_operator.api.config import (
    CONFIG_KEYS,
    OPTIONAL_KEYS,
    OperatorConfig,
    parse_operator_config,
)


def _data(**overrides: object) -> dict[str, str]:
    data = OperatorConfig().to_configmap_data()
    for key, value in overrides.items():
        data[key] = value if isinstance(value, str) else json.dumps(value)
    return data


def _problem_keys(data: dict[str, str] | None, previous: OperatorConfig | None = None) -> list[str]:
    return [p.key for p in parse_operator_config(data, previous).problems]


def test_shipped_data_round_trips_without_problems() -> None:
    result = parse_operator_config(OperatorConfig().to_configmap_data())
    assert result.problems == ()
    assert result.config == OperatorConfig()


def test_every_value_is_a_json_object_string() -> None:
    data = OperatorConfig().to_configmap_data()
    assert set(data) == set(CONFIG_KEYS)
    for value in data.values():
        assert isinstance(json.loads(value), dict)


def test_missing_configmap_gives_defaults_and_reports_required_keys() -> None:
    result = parse_operator_config(None)
    assert result.config == OperatorConfig()
    assert sorted(p.key for p in result.problems) == sorted(set(CONFIG_KEYS) - OPTIONAL_KEYS)
    assert all("missing" in p.message for p in result.problems)
    assert "inferenceservice-config key 'predictors': missing" in str(result.problems[0])


def test_optional_keys_may_be_absent() -> None:
    data = _data()
    del data["inferenceService"]
    del data["transformers"]
    assert _problem_keys(data) == []


def test_partial_key_merges_over_defaults() -> None:
    data = _data(
        storageInitializer={"image": "my/initializer:1"},
        predictors={"sklearn": {"v1": {"defaultImageVersion": "v9"}}},
    )
    result = parse_operator_config(data)
    assert result.problems == ()
    config = result.config
    assert config.storage_initializer.image == "my/initializer:1"
    assert (
        config.storage_initializer.memory_limit == OperatorConfig().storage_initializer.memory_limit
    )
    assert config.predictors.sklearn.v1.default_image_version == "v9"
    assert config.predictors.sklearn.v1.image == OperatorConfig().predictors.sklearn.v1.image
    assert config.predictors.xgboost == OperatorConfig().predictors.xgboost


@pytest.mark.parametrize(
    ("key", "raw", "fragment"),
    [
        ("ingress", "{not json", "not valid JSON"),
        ("ingress", '["a list"]', "must be a JSON object"),
        ("ingress", '{"ingressGateway": ""}', "must not be empty"),
        ("ingress", '{"urlScheme": "ftp"}', "must be http or https"),
        ("storageInitializer", '{"memoryLimit": "1 GB"}', "not a Kubernetes quantity"),
        ("inferenceService", '{"resource": {"cpuLimit": "lots"}}', "not a Kubernetes quantity"),
        ("predictors", '{"tensorflow": {"image": 5}}', "tensorflow.image"),
    ],
)
def test_malformed_key_is_reported_and_keeps_previous(key: str, raw: str, fragment: str) -> None:
    previous = parse_operator_config(
        _data(
            ingress={"ingressDomain": "prev.example"},
            storageInitializer={"image": "prev/initializer"},
            inferenceService={"resource": {"cpuLimit": "3"}},
            predictors={"tensorflow": {"image": "prev/tf"}},
        )
    ).config
    result = parse_operator_config(_data(**{key: raw}), previous)
    assert [p.key for p in result.problems] == [key]
    assert fragment in result.problems[0].message
    assert "keeping the last good value" in result.problems[0].message
    attribute = CONFIG_KEYS[key]
    assert getattr(previous, attribute) != getattr(OperatorConfig(), attribute)
    assert getattr(result.config, attribute) == getattr(previous, attribute)


def test_one_bad_key_does_not_reset_others() -> None:
    data = _data(ingress="{oops", logger={"defaultUrl": "http://sink"})
    result = parse_operator_config(data)
    assert [p.key for p in result.problems] == ["ingress"]
    assert result.config.logger.default_url == "http://sink"


def test_unknown_keys_are_reported_and_ignored() -> None:
    data = _data()
    data["router"] = '{"image": "kserve/router"}'
    result = parse_operator_config(data)
    assert [(p.key, p.message) for p in result.problems] == [("router", "unknown key, ignored")]


def test_unknown_fields_inside_a_key_are_ignored() -> None:
    result = parse_operator_config(_data(ingress={"disableIstioVirtualHost": True}))
    assert result.problems == ()


def test_changed_config_changes_defaulting() -> None:
    isvc = InferenceService.model_validate(
        {"metadata": {"name": "m"}, "spec": {"predictor": {"tensorflow": {}}}}
    )
    before = default_inference_service(isvc, OperatorConfig())
    changed = parse_operator_config(
        _data(
            predictors={"tensorflow": {"defaultImageVersion": "2.99.0"}},
            inferenceService={"resource": {"memoryRequest": "1Gi", "memoryLimit": "3Gi"}},
        )
    )
    assert changed.problems == ()
    after = default_inference_service(isvc, changed.config)
    assert before.spec.predictor.tensorflow is not None
    assert after.spec.predictor.tensorflow is not None
    assert after.spec.predictor.tensorflow.runtime_version == "2.99.0"
    assert before.spec.predictor.tensorflow.runtime_version != "2.99.0"
    resources = after.spec.predictor.tensorflow.resources
    assert resources is not None
    assert resources.requests == {"cpu": "1", "memory": "1Gi"}
    assert resources.limits == {"cpu": "1", "memory": "3Gi"}


def test_defaults_match_reference_resource_defaults() -> None:
    resource = OperatorConfig().inference_service.resource
    assert (resource.cpu_request, resource.cpu_limit) == ("1", "1")
    assert (resource.memory_request, resource.memory_limit) == ("2Gi", "2Gi")


def test_request_above_limit_is_an_invalid_config_key() -> None:
    data = _data(storageInitializer={"cpuRequest": "2", "cpuLimit": "1"})
    result = parse_operator_config(data)
    (problem,) = result.problems
    assert problem.key == "storageInitializer" and "cpuRequest (2)" in problem.message
    assert result.config.storage_initializer == OperatorConfig().storage_initializer
    assert _problem_keys(_data(inferenceService={"resource": {"memoryRequest": "3Gi"}})) == [
        "inferenceService"]


def test_negative_quantities_are_refused() -> None:
    result = parse_operator_config(_data(agent={"cpuLimit": "-1"}))
    assert [p.key for p in result.problems] == ["agent"]
    assert "must not be negative" in result.problems[0].message


def test_deeply_nested_values_are_problems_not_crashes() -> None:
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    shallow_but_deep = json.dumps({"x": json.loads("[" * 40 + "1" + "]" * 40)})
    for value in (deep, shallow_but_deep):
        result = parse_operator_config(_data(transformers=value))
        assert [p.key for p in result.problems] == ["transformers"]
        assert "nested deeper than" in result.problems[0].message
