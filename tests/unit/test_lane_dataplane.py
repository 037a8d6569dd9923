"""Pure parts of the lane's real node and data path: configs, routes, objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kfserving_operator.cluster import dataplane, modelstore, node, predict
from kfserving_operator.cluster.localconfig import local_operator_config
from kfserving_operator.render import render_objects

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "local"


def _example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    loaded["metadata"].setdefault("namespace", "default")
    return loaded


def _virtual_service(isvc: dict[str, Any]) -> dict[str, Any]:
    return next(obj for obj in render_objects(isvc, local_operator_config())
                if obj["kind"] == "VirtualService")


def test_request_path_per_protocol_and_override() -> None:
    assert predict.request_path("iris", v2=False, path=None) == "/v1/models/iris:predict"
    assert predict.request_path("iris", v2=True, path=None) == "/v2/models/iris/infer"
    assert predict.request_path("iris", v2=False, path="v1/models/iris:explain") == (
        "/v1/models/iris:explain")


@pytest.mark.parametrize(("example", "component"), [
    ("sklearn.yaml", "predictor"), ("transformer.yaml", "transformer"),
])
def test_route_follows_the_operators_virtual_service(example: str, component: str) -> None:
    isvc = _example(example)
    name = isvc["metadata"]["name"]
    isvc["status"] = {"url": f"http://{name}.default.example.com"}
    route = predict.route_for(isvc, _virtual_service(isvc))
    assert route.url_host == f"{name}.default.example.com"
    # The top-level host goes to the transformer when there is one, else the predictor.
    assert route.host == f"{name}-{component}-default.default.svc.cluster.local"


def test_route_needs_a_url_and_a_virtual_service() -> None:
    isvc = _example("sklearn.yaml")
    isvc["status"] = {"conditions": [{"type": "Ready", "status": "False",
                                      "reason": "PredictorConfigurationReady",
                                      "message": "image pull"}]}
    with pytest.raises(predict.PredictError, match=r"no URL yet.*image pull"):
        predict.route_for(isvc, _virtual_service(isvc))
    isvc["status"] = {"url": "http://sklearn-iris.default.example.com"}
    with pytest.raises(predict.PredictError, match="no VirtualService"):
        predict.route_for(isvc, None)
    other = _example("xgboost.yaml")
    with pytest.raises(predict.PredictError, match="no route for sklearn-iris"):
        predict.route_for(isvc, _virtual_service(other))


def test_request_body_must_be_json(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text('{"instances": [[1, 2]]}')
    assert predict.load_body(str(good)) == b'{"instances": [[1, 2]]}'
    bad = tmp_path / "bad.json"
    bad.write_text("{instances: ")
    with pytest.raises(predict.PredictError, match=r"bad\.json is not JSON"):
        predict.load_body(str(bad))


def test_local_config_names_the_node_images_and_small_requests() -> None:
    config = local_operator_config()
    assert config.predictors.sklearn.v1.image == "kind.local/kfserving/sklearnserver"
    assert config.predictors.sklearn.v2.image == "kind.local/kfserving/mlserver"
    assert config.predictors.xgboost.v1.image == "kind.local/kfserving/xgbserver"
    assert config.storage_initializer.image == "kind.local/kfserving/storage-initializer:lane"
    assert config.inference_service.resource.cpu_request == "100m"
    # Raw mode's Ingresses go to the lane's Traefik; everything else is the shipped default.
    assert config.ingress.ingress_class_name == "traefik"
    assert config.ingress.model_copy(update={"ingress_class_name": None}) == (
        type(config.ingress)())
    assert config.predictors.tensorflow.image == "tensorflow/serving"


def test_the_local_examples_render_with_the_node_images() -> None:
    isvc = _example("sklearn.yaml")
    ksvc = next(obj for obj in render_objects(isvc, local_operator_config())
                if obj["kind"] == "Service" and obj["apiVersion"].startswith("serving.knative"))
    container = ksvc["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "kind.local/kfserving/sklearnserver:lane"
    assert ksvc["spec"]["template"]["spec"]["serviceAccountName"] == "kfserving-models"


def test_kubelet_config_suits_this_machine() -> None:
    config = node.kubelet_config(
        cgroup_root="/kfserving-x", socket=Path("/run/c.sock"), port=1, healthz_port=2,
        client_ca=Path("/ca"), resolv_conf=Path("/r"), pod_logs=Path("/l"),
        cluster_dns=[node.NODE_IP])
    assert config["failCgroupV1"] is False
    assert config["cgroupDriver"] == "cgroupfs"
    # Imported images can never be pulled again: no image garbage collection.
    assert config["imageGCHighThresholdPercent"] == 100
    assert config["containerRuntimeEndpoint"] == "unix:///run/c.sock"
    assert config["address"] == node.NODE_IP


def test_cgroup_root_is_per_checkout() -> None:
    first = node.cgroup_root_name(Path("/a/.cache/cluster"))
    assert first == node.cgroup_root_name(Path("/a/.cache/cluster"))
    assert first != node.cgroup_root_name(Path("/b/.cache/cluster"))
    assert first.startswith("/kfserving-")


def test_cni_keeps_pods_on_the_bridge() -> None:
    config = node.cni_config(Path("/state"))
    bridge = config["plugins"][0]
    assert bridge["bridge"] == node.BRIDGE
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": node.POD_SUBNET, "gateway": node.NODE_IP}]]
    assert bridge["ipam"]["dataDir"] == "/state/cni/ipam"


def test_containerd_config_keeps_oom_scores_and_uses_the_pause_image() -> None:
    text = node.containerd_config(Path("/root"), Path("/state"), Path("/s.sock"), Path("/cni"))
    assert "restrict_oom_score_adj = true" in text
    assert f'sandbox_image = "{node.PAUSE_IMAGE}"' in text
    assert 'conf_dir = "/cni"' in text


def test_standing_objects_point_at_the_bridge() -> None:
    objects = dataplane.standing_objects("10.90.0.1")
    names = {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    assert ("Service", "traefik-private") in names and ("Endpoints", "activator-service") in names
    private = next(obj for obj in objects if obj["metadata"]["name"] == "traefik-private"
                   and obj["kind"] == "Service")
    assert private["spec"]["clusterIP"] == "None"  # DNS answers with the bridge's address
    activator = next(obj for obj in objects if obj["metadata"]["name"] == "activator-service"
                     and obj["kind"] == "Endpoints")
    assert activator["subsets"][0]["addresses"] == [{"ip": "10.90.0.1"}]
    assert {p["port"] for p in activator["subsets"][0]["ports"]} == {
        dataplane.ACTIVATOR_HTTP_PORT, dataplane.ACTIVATOR_H2C_PORT}


def test_traefik_serves_knative_on_two_entry_points() -> None:
    config = dataplane.traefik_config(api_url="https://127.0.0.1:6443", token="t",
                                      ca_file=Path("/ca"), address="10.90.0.1")
    assert config["entryPoints"]["web-internal"]["address"] == "10.90.0.1:80"
    # Routes apply as soon as they are read, not after Traefik's default 2 s throttle.
    assert config["providers"]["providersThrottleDuration"] == "0s"
    knative = config["providers"]["knative"]
    assert knative["privateEntrypoints"] == ["web-internal"]
    assert knative["privateService"]["name"] == "traefik-private"


def test_corefile_answers_the_cluster_domain_only() -> None:
    text = dataplane.corefile(Path("/kc"), "10.90.0.1", "cluster.local")
    assert "kubernetes cluster.local in-addr.arpa" in text
    assert "rcode NXDOMAIN" in text
    assert text.count("bind 10.90.0.1") == 2


def test_model_store_credentials_use_kfservings_annotations() -> None:
    access = modelstore.ModelStoreAccess("10.90.0.1:9000", "key", "secret")
    secret, account = modelstore.credential_objects(access, "ns")
    assert secret["metadata"]["annotations"]["serving.kubeflow.org/s3-endpoint"] == (
        "10.90.0.1:9000")
    assert secret["metadata"]["annotations"]["serving.kubeflow.org/s3-usehttps"] == "0"
    assert set(secret["data"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert account["secrets"] == [{"name": modelstore.SECRET}]
    assert account["metadata"] == {"name": modelstore.SERVICE_ACCOUNT, "namespace": "ns"}


def test_model_files_are_keyed_relative_to_the_models_dir(tmp_path: Path) -> None:
    (tmp_path / "sklearn" / "iris").mkdir(parents=True)
    (tmp_path / "sklearn" / "iris" / "model.joblib").write_bytes(b"x")
    assert [key for key, _ in modelstore.model_files(tmp_path)] == [
        "sklearn/iris/model.joblib"]


def test_raw_mode_keeps_the_urls_host() -> None:
    isvc = _example("sklearn.yaml")
    isvc["status"] = {"url": "http://sklearn-iris-default.example.com",
                      "deploymentMode": "RawDeployment"}
    route = predict.route_for(isvc, None)
    assert route.host == route.url_host == "sklearn-iris-default.example.com"


def test_lane_processes_resolve_through_coredns() -> None:
    text = dataplane.resolv_conf("10.90.0.1", "cluster.local")
    assert text.splitlines()[0] == "nameserver 10.90.0.1"
    assert "search knative-serving.svc.cluster.local svc.cluster.local cluster.local" in text
    wrapper = dataplane.cluster_dns_wrapper(Path("/state/resolv.conf"))
    assert wrapper[:3] == ["unshare", "--mount", "--propagation"]
    assert wrapper[-1] == "/state/resolv.conf"


def test_printable_answers_read_as_the_readme_shows() -> None:
    assert predict.printable(b'{"predictions":[1,1]}') == '{"predictions": [1, 1]}'
    assert predict.printable(b"Bad Gateway\n") == "Bad Gateway"
