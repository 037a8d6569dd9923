"""The Knative lane's pure parts: route detection, upstream objects as the lane changes them,
KWOK stages, and make run's impersonation check. No cluster, no network namespace."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kfserving_operator.cluster.lane import (
    INGRESS_DOMAIN,
    SYSTEM_NAMESPACE,
    UpstreamModules,
    knative_config,
    knative_webhooks,
    kwok_stages,
)
from kfserving_operator.cluster.netns import parse_default_route
from kfserving_operator.devrun import impersonation_in

IPV4_HEADER = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"


def test_a_default_route_is_found() -> None:
    table = IPV4_HEADER + "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    assert parse_default_route(table, "") == "IPv4 default route via eth0"


def test_a_link_route_is_not_a_default_route() -> None:
    table = IPV4_HEADER + "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    assert parse_default_route(table, "") is None


def test_an_ipv6_default_route_is_found_but_not_loopbacks_reject_route() -> None:
    zero = "0" * 32
    via_eth = f"{zero} 00 {zero} 00 fd{'0' * 29}1 00000400 00000002 00000000 00000003 eth0\n"
    reject_lo = f"{zero} 00 {zero} 00 {zero} ffffffff 00000001 00000000 00200200 lo\n"
    assert parse_default_route(IPV4_HEADER, reject_lo) is None
    assert parse_default_route(IPV4_HEADER, via_eth) == "IPv6 default route via eth0"


def _write(path: Path, *docs: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs))


@pytest.fixture
def modules(tmp_path: Path) -> UpstreamModules:
    """A miniature of the module layout the lane reads (our own minimal objects)."""
    serving, networking = tmp_path / "serving", tmp_path / "networking"
    core = serving / "config" / "core"
    for name in ("config-deployment", "config-domain", "config-logging"):
        _write(core / "configmaps" / f"{name}.yaml", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": SYSTEM_NAMESPACE},
            "data": {"_example": "kept as it is"}})
    _write(networking / "config" / "config-network.yaml", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "config-network", "namespace": SYSTEM_NAMESPACE}})
    _write(core / "webhooks" / "secret.yaml", {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "webhook-certs", "namespace": SYSTEM_NAMESPACE}})
    _write(core / "webhooks" / "defaulting.yaml", {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "webhook.serving.knative.dev"},
        "webhooks": [{"name": "webhook.serving.knative.dev", "clientConfig": {
            "service": {"name": "webhook", "namespace": SYSTEM_NAMESPACE}}}]})
    kwok = tmp_path / "kwok" / "kustomize" / "stage"
    for group, stage in (("node/fast", "node-initialize"),
                         ("node/heartbeat-with-lease", "node-heartbeat-with-lease"),
                         ("pod/general", "pod-ready")):
        (kwok / group).mkdir(parents=True)
        (kwok / group / "kustomization.yaml").write_text(
            yaml.safe_dump({"resources": [f"{stage}.yaml"]}))
        _write(kwok / group / f"{stage}.yaml", {
            "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage",
            "metadata": {"name": stage},
            "spec": {"delay": {"durationMilliseconds": 1000,
                               "jitterDurationMilliseconds": 5000},
                     "next": {"statusTemplate": "{}"}}})
    return UpstreamModules("v0.42.2", serving, networking, tmp_path / "caching",
                           tmp_path / "kwok")


def test_config_sets_only_the_keys_the_lane_needs(modules: UpstreamModules) -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in knative_config(modules)}
    deployment = objects[("ConfigMap", "config-deployment")]["data"]
    # The queue-proxy the node image build made from Knative's module, at its version.
    assert deployment["queue-sidecar-image"] == "kind.local/knative-serving/queue:v0.42.2"
    assert "index.docker.io" in deployment["registries-skipping-tag-resolving"].split(",")
    assert deployment["progress-deadline"] == "90s"
    assert objects[("ConfigMap", "config-domain")]["data"][INGRESS_DOMAIN] == ""
    assert objects[("ConfigMap", "config-logging")]["data"] == {"_example": "kept as it is"}
    # KIngresses go to Traefik, the lane's ingress.
    assert objects[("ConfigMap", "config-network")]["data"]["ingress-class"] == (
        "traefik.ingress.networking.knative.dev")
    assert ("Secret", "webhook-certs") in objects
    webhook = objects[("Service", "webhook")]["spec"]
    assert webhook == {"type": "ExternalName", "externalName": "localhost"}
    # The activator runs as a process: its Service comes with the data path's objects.
    assert ("Service", "activator-service") not in objects
    assert ("Namespace", SYSTEM_NAMESPACE) in objects


def test_webhooks_point_at_the_webhook_port(modules: UpstreamModules) -> None:
    [hooks] = knative_webhooks(modules, 40123)
    assert hooks["webhooks"][0]["clientConfig"]["service"] == {
        "name": "webhook", "namespace": SYSTEM_NAMESPACE, "port": 40123}


def test_kwok_stages_come_from_the_kustomizations_without_delays(
        modules: UpstreamModules) -> None:
    stages = kwok_stages(modules)
    assert [s["metadata"]["name"] for s in stages] == [
        "node-initialize", "node-heartbeat-with-lease", "pod-ready"]
    assert all("delay" not in s["spec"] and s["spec"]["next"] for s in stages)


@pytest.mark.parametrize("user,found", [
    ({"client-certificate-data": "x"}, []),
    ({"token": "t", "as": "alice"}, ["as"]),
    ({"token": "t", "as-groups": ["admins"], "as-uid": "1"}, ["as-groups", "as-uid"]),
])
def test_impersonation_is_detected(user: dict[str, object], found: list[str]) -> None:
    assert impersonation_in({"users": [{"name": "u", "user": user}]}) == found


def test_exec_takes_everything_after_the_dashes_verbatim() -> None:
    from kfserving_operator.cli import parse_args

    args = parse_args(["cluster", "exec", "--state-dir", "/tmp/x", "--",
                       "kubectl", "get", "isvc", "-o", "json", "--state-dir", "y"])
    assert args.state_dir == "/tmp/x"
    assert args.command == ["kubectl", "get", "isvc", "-o", "json", "--state-dir", "y"]
    assert parse_args(["cluster", "up", "--knative"]).knative is True
    assert parse_args(["cluster", "up"]).knative is False
    with pytest.raises(SystemExit):
        parse_args(["cluster", "up", "--", "kubectl"])
