"""Container and Knative Service details the golden files do not pin down."""

from __future__ import annotations

from typing import Any

from kfserving_operator.reconcile import plan_reconcile
from tests.unit.test_reconcile_plan import CONFIG, T0, isvc, observed


def render(**kwargs: Any) -> list[dict[str, Any]]:
    return list(plan_reconcile(isvc(**kwargs), CONFIG, observed(), T0).apply)


def template(predictor: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = render(predictor=predictor, **kwargs)[0]["spec"]["template"]
    return result


def container(predictor: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = template(predictor, **kwargs)["spec"]["containers"][0]
    return result


def env(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def test_user_workers_arg_wins() -> None:
    c = container(
        {"containerConcurrency": 4, "sklearn": {"storageUri": "gs://a/b", "args": ["--workers=2"]}}
    )
    assert [a for a in c["args"] if a.startswith("--workers")] == ["--workers=2"]


def test_zero_concurrency_gives_no_workers() -> None:
    c = container({"containerConcurrency": 0, "sklearn": {"storageUri": "gs://a/b"}})
    assert not any(a.startswith("--workers") for a in c["args"])
    t = container({"containerConcurrency": 0, "triton": {"storageUri": "gs://a/b"}})
    assert not any(a.startswith("--http-thread-count") for a in t["args"])


def test_nthread_rounds_cpu_limit_up() -> None:
    c = container({"xgboost": {"storageUri": "gs://a/b", "resources": {"limits": {"cpu": "300m"}}}})
    assert "--nthread=1" in c["args"]


def test_user_image_wins_and_runtime_version_picks_tag() -> None:
    c = container({"sklearn": {"storageUri": "gs://a/b", "image": "my/sklearn:dev"}})
    assert c["image"] == "my/sklearn:dev"
    c = container({"sklearn": {"storageUri": "gs://a/b", "runtimeVersion": "v0.14.0"}})
    assert c["image"] == "kserve/sklearnserver:v0.14.0"


def test_onnx_directory_uses_model_onnx() -> None:
    c = container({"onnx": {"storageUri": "gs://a/models/style"}})
    assert c["args"][0] == "--model_path=/mnt/models/model.onnx"


def test_tensorflow_keeps_user_command_and_appends_user_args() -> None:
    c = container(
        {"tensorflow": {"storageUri": "gs://a/b", "command": ["/bin/tfs"], "args": ["--x=1"]}}
    )
    assert c["command"] == ["/bin/tfs"]
    assert c["args"][-1] == "--x=1"


def test_mlserver_without_storage_uri_and_user_override() -> None:
    c = container(
        {
            "sklearn": {
                "protocolVersion": "v2",
                "env": [{"name": "MLSERVER_HTTP_PORT", "value": "9999"}],
            }
        }
    )
    values = env(c)
    assert values["MLSERVER_HTTP_PORT"] == "9999"
    assert values["MLSERVER_LOAD_MODELS_AT_STARTUP"] == "false"
    assert "MLSERVER_MODEL_NAME" not in values
    assert [e["name"] for e in c["env"]].count("MLSERVER_HTTP_PORT") == 1
    assert "args" not in c


def test_pod_spec_fields_pass_through() -> None:
    spec = template(
        {
            "serviceAccountName": "sa",
            "nodeSelector": {"gpu": "a100"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {}},
            "imagePullSecrets": [{"name": "pull"}],
            "sklearn": {"storageUri": "gs://a/b"},
        }
    )["spec"]
    assert spec["serviceAccountName"] == "sa"
    assert spec["nodeSelector"] == {"gpu": "a100"}
    assert spec["tolerations"][0]["key"] == "gpu"
    assert spec["affinity"] == {"nodeAffinity": {}}
    assert spec["imagePullSecrets"] == [{"name": "pull"}]
    assert "minReplicas" not in spec and "sklearn" not in spec


def test_custom_predictor_sidecars_are_kept() -> None:
    spec = template(
        {
            "containers": [
                {"image": "model:1", "ports": [{"containerPort": 8080}]},
                {"name": "side", "image": "side:1"},
            ]
        }
    )["spec"]
    assert [c["name"] for c in spec["containers"]] == ["kfserving-container", "side"]


def test_user_autoscaling_class_is_kept_and_legacy_keys_dropped() -> None:
    annotations = template(
        {"scaleMetric": "cpu", "scaleTarget": 70, "sklearn": {"storageUri": "gs://a/b"}},
        annotations={
            "autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev",
            "autoscaling.knative.dev/maxScale": "9",
            "autoscaling.knative.dev/max-scale": "8",
        },
    )["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/class"] == "hpa.autoscaling.knative.dev"
    assert annotations["autoscaling.knative.dev/metric"] == "cpu"
    assert annotations["autoscaling.knative.dev/target"] == "70"
    assert "autoscaling.knative.dev/maxScale" not in annotations
    assert "autoscaling.knative.dev/max-scale" not in annotations
    assert annotations["autoscaling.knative.dev/min-scale"] == "1"


def test_logger_default_mode_and_user_port_kept() -> None:
    t = template(
        {
            "logger": {},
            "containers": [{"image": "model:1", "ports": [{"containerPort": 8080}]}],
        }
    )
    annotations = t["metadata"]["annotations"]
    assert annotations["internal.serving.kubeflow.org/logger"] == "true"
    assert annotations["internal.serving.kubeflow.org/logger-mode"] == "all"
    assert "internal.serving.kubeflow.org/logger-sink-url" not in annotations
    assert t["spec"]["containers"][0]["ports"] == [{"containerPort": 8080}]


def test_transformer_args_not_duplicated_and_batcher_annotations() -> None:
    objs = render(
        transformer={
            "batcher": {"maxBatchSize": 8},
            "containers": [{"image": "t:1", "args": ["--predictor_host=elsewhere:80"]}],
        }
    )
    transformer = objs[1]["spec"]["template"]
    args = transformer["spec"]["containers"][0]["args"]
    assert args == [
        "--predictor_host=elsewhere:80",
        "--model_name",
        "iris",
        "--http_port",
        "8080",
    ]
    annotations = transformer["metadata"]["annotations"]
    assert annotations["internal.serving.kubeflow.org/batcher"] == "true"
    assert annotations["internal.serving.kubeflow.org/batcher-max-batchsize"] == "8"
    assert transformer["spec"]["containers"][0]["ports"] == [{"containerPort": 9081}]


def test_custom_transformer_storage_uri_env() -> None:
    objs = render(
        transformer={
            "containers": [{"image": "t:1", "env": [{"name": "STORAGE_URI", "value": "gs://a/t"}]}]
        }
    )
    annotations = objs[1]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["internal.serving.kubeflow.org/storage-initializer-sourceuri"] == "gs://a/t"


def test_aix_keeps_user_container_fields() -> None:
    objs = render(
        explainer={
            "aix": {
                "type": "LimeImages",
                "image": "my/aix:1",
                "env": [{"name": "A", "value": "b"}],
                "args": ["--extra"],
            }
        }
    )
    c = objs[1]["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "my/aix:1"
    assert env(c) == {"A": "b"}
    assert c["args"][-3:] == ["--explainer_type", "LimeImages", "--extra"]


def test_explainer_targets_predictor_even_with_transformer() -> None:
    objs = render(
        transformer={"containers": [{"image": "t:1"}]},
        explainer={"alibi": {"type": "AnchorText"}},
    )
    args = objs[2]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--predictor_host") + 1] == "iris-predictor-default.default"


def test_labels_and_annotations_of_ksvc() -> None:
    objs = render(
        labels={"team": "ml"},
        annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}", "a": "b"},
    )
    ksvc_obj = objs[0]
    assert ksvc_obj["metadata"]["labels"] == {
        "team": "ml",
        "serving.kubeflow.org/inferenceservice": "iris",
        "component": "predictor",
    }
    assert "annotations" not in ksvc_obj["metadata"]
    template_annotations = ksvc_obj["spec"]["template"]["metadata"]["annotations"]
    assert template_annotations["a"] == "b"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in template_annotations
    service = objs[1]
    assert service["spec"] == {
        "type": "ExternalName",
        "externalName": "knative-local-gateway.istio-system.svc.cluster.local",
        "sessionAffinity": "None",
    }


def test_no_none_values_anywhere() -> None:
    def walk(value: Any) -> None:
        assert value is not None
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for obj in render(
        transformer={"containers": [{"image": "t:1"}]},
        explainer={"art": {"type": "SquareAttack"}},
    ):
        walk(obj)
