"""The deployable manifests: the kustomize base and cert-manager overlay, and the Helm chart.

They are rendered with the real ``kubectl kustomize`` and ``helm``, checked by a real
kube-apiserver through server-side dry-run, and their RBAC is exercised by impersonating the
operator's ServiceAccount against a uniquely named copy of it.

The copies in ``manifests/`` of generated things (the CRD, the ConfigMap defaults) are
compared with their sources here. ``KFSERVING_UPDATE_MANIFESTS=1`` rewrites the copies instead
of failing, after ``make crds`` or a change to the config defaults.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
import tomllib
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfserving_operator.api.config import (
    CONFIGMAP_NAME,
    LAST_GOOD_CONFIGMAP_NAME,
    OperatorConfig,
    parse_operator_config,
)
from kfserving_operator.api.constants import WEBHOOK_SERVICE_NAME
from kfserving_operator.cluster.localplane import find_tool, project_root
from kfserving_operator.k8s.leader import lease_object, next_record, record_of
from kfserving_operator.operator.runtime import LEASE_NAME
from kfserving_operator.webhooks import certificates, legacy_registration, registration
from tests.support.cluster import Cluster, KubectlError, wait_established, wait_for
from tests.support.operator import run_operator

ROOT = project_root()
CRD_FILE = "serving.kubeflow.org_inferenceservices.yaml"
CRD_SOURCE = ROOT / "crds" / CRD_FILE
KUSTOMIZE = ROOT / "manifests" / "kustomize"
BASE = KUSTOMIZE / "base"
OVERLAY = KUSTOMIZE / "overlays" / "cert-manager"
CHART = ROOT / "manifests" / "helm" / "kfserving-operator"
CONFIGMAP_FILE = BASE / "configmap.yaml"
CHART_CONFIG_DEFAULTS = CHART / "files" / "inferenceservice-config.json"
TM_CRD_FILE = "serving.kubeflow.org_trainedmodels.yaml"
CRD_COPIES = tuple(directory / "crds" / name for name in (CRD_FILE, TM_CRD_FILE)
                   for directory in (BASE, CHART))

NAMESPACE = "kfserving-system"
SERVICE_ACCOUNT = "kfserving-controller-manager"
CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
CERT_MANAGER_KINDS = ("Issuer", "Certificate")
UPDATE = os.environ.get("KFSERVING_UPDATE_MANIFESTS") == "1"

Objects = list[dict[str, Any]]


# -- helpers ------------------------------------------------------------------------------------


def _docs(text: str) -> Objects:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _find(objects: Objects, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects
             if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _kinds(objects: Objects) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objects}


def _container(objects: Objects) -> dict[str, Any]:
    deployment = _find(objects, "Deployment", "kfserving-controller-manager")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["manager"]
    container: dict[str, Any] = containers[0]
    return container


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


class CommandFailed(AssertionError):
    """kubectl kustomize or helm exited non-zero."""


def _run(args: list[str], env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=120,
                            env={**os.environ, **(env or {})})
    if result.returncode != 0:
        raise CommandFailed(f"{' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stderr}\n{result.stdout}")
    return result.stdout


def kustomize(path: Path) -> Objects:
    return _docs(_run([str(find_tool("kubectl")), "kustomize", str(path)]))


class Helm:
    """The helm binary with throw-away home directories (it never touches ``$HOME``)."""

    def __init__(self, home: Path) -> None:
        self.binary = str(find_tool("helm"))
        self.env = {f"HELM_{kind}_HOME": str(home / kind.lower())
                    for kind in ("CACHE", "CONFIG", "DATA")}

    def __call__(self, *args: str) -> str:
        return _run([self.binary, *args], env=self.env)

    def template(self, *args: str, namespace: str = NAMESPACE) -> Objects:
        return _docs(self("template", "kfserving-operator", str(CHART), "--namespace", namespace,
                          "--kube-version", "1.35.0", *args))


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(tmp_path_factory.mktemp("helm-home"))


def _configmap_yaml() -> str:
    """The base's ConfigMap, written from ``OperatorConfig().to_configmap_data()``."""

    class Dumper(yaml.SafeDumper):
        pass

    def literal(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value,
                                       style="|" if "\n" in value else None)

    Dumper.add_representer(str, literal)
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIGMAP_NAME, "namespace": NAMESPACE,
                     "labels": {"app.kubernetes.io/name": "kfserving-operator"}},
        "data": OperatorConfig().to_configmap_data(),
    }
    header = ("# The operator's default configuration, generated from "
              "kfserving_operator/api/config.py\n"
              "# (OperatorConfig().to_configmap_data()). Regenerate with\n"
              "#   KFSERVING_UPDATE_MANIFESTS=1 .venv/bin/pytest "
              "tests/integration/test_manifests.py\n")
    body: str = yaml.dump(configmap, Dumper=Dumper, sort_keys=False, width=1000)
    return header + body


def _default_config_objects() -> dict[str, Any]:
    return {key: json.loads(value) for key, value in OperatorConfig().to_configmap_data().items()}


def _expected_webhooks(namespace: str,
                       watch_namespaces: tuple[str, ...] = ()) -> dict[str, Any]:
    """registration.py's configurations for a Service reference, without the caBundle."""

    def client_config(path: str) -> dict[str, Any]:
        config = registration.service_client_config(WEBHOOK_SERVICE_NAME, namespace, path,
                                                    b"")
        config.pop("caBundle")
        return config

    return {
        "MutatingWebhookConfiguration":
            registration.mutating_configuration(client_config, namespace, watch_namespaces),
        "ValidatingWebhookConfiguration":
            registration.validating_configuration(client_config, watch_namespaces),
        legacy_registration.TM_CONFIGURATION_NAME:
            legacy_registration.trained_model_configuration(client_config, watch_namespaces),
    }


# -- copies of generated files ------------------------------------------------------------------


@pytest.mark.parametrize("copy_path", CRD_COPIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_crd_copy_matches_generated_crd(copy_path: Path) -> None:
    source = (ROOT / "crds" / copy_path.name).read_bytes()
    if UPDATE and (not copy_path.exists() or copy_path.read_bytes() != source):
        copy_path.write_bytes(source)
    assert copy_path.read_bytes() == source, (
        f"{copy_path.relative_to(ROOT)} differs from crds/{copy_path.name}; "
        "rerun with KFSERVING_UPDATE_MANIFESTS=1")


def test_configmap_matches_operator_defaults() -> None:
    if UPDATE and (not CONFIGMAP_FILE.exists() or CONFIGMAP_FILE.read_text() != _configmap_yaml()):
        CONFIGMAP_FILE.write_text(_configmap_yaml())
    configmap = yaml.safe_load(CONFIGMAP_FILE.read_text())
    assert configmap["metadata"]["name"] == CONFIGMAP_NAME
    assert configmap["metadata"]["namespace"] == NAMESPACE
    assert configmap["data"] == OperatorConfig().to_configmap_data(), (
        "manifests/kustomize/base/configmap.yaml differs from OperatorConfig(); "
        "rerun with KFSERVING_UPDATE_MANIFESTS=1")
    result = parse_operator_config(configmap["data"])
    assert result.problems == ()


def test_chart_config_defaults_match_operator_defaults() -> None:
    expected = _default_config_objects()
    if UPDATE:
        CHART_CONFIG_DEFAULTS.write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
    assert json.loads(CHART_CONFIG_DEFAULTS.read_text()) == expected, (
        "the chart's files/inferenceservice-config.json differs from OperatorConfig(); "
        "rerun with KFSERVING_UPDATE_MANIFESTS=1")


def test_versions_agree() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"] == ">=1.28.0-0"
    assert chart["appVersion"] == version
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert kustomization["images"] == [{"name": "kfserving-operator", "newTag": version}]


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()
             and not line.lstrip().startswith("#")]
    # The public base by default; hack/build-image.sh passes a debootstrap-made one instead.
    assert lines[:2] == ["ARG BASE_IMAGE=python:3.11-slim", "FROM ${BASE_IMAGE}"]
    assert 'ENTRYPOINT ["kfserving-operator", "run", "--webhooks", "cluster"]' in lines
    assert "EXPOSE 9443 8080" in lines
    # The pod's runAsUser is 10001; the image must run as the same numeric non-root user.
    assert "USER 10001:10001" in lines
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".cache", ".pytest_cache", "**/__pycache__"} <= set(ignored)


# -- rendering ----------------------------------------------------------------------------------


def _check_operator_objects(objects: Objects, *, cert_manager: bool,
                            namespace: str = NAMESPACE) -> None:
    """What every rendering must contain, whatever produced it."""
    names = _kinds(objects)
    for expected in [("CustomResourceDefinition", "inferenceservices.serving.kubeflow.org"),
                     ("CustomResourceDefinition", "trainedmodels.serving.kubeflow.org"),
                     ("ValidatingWebhookConfiguration",
                      legacy_registration.TM_CONFIGURATION_NAME),
                     ("ServiceAccount", SERVICE_ACCOUNT),
                     ("ClusterRole", "kfserving-manager-role"),
                     ("ClusterRoleBinding", "kfserving-manager-rolebinding"),
                     ("ConfigMap", CONFIGMAP_NAME),
                     ("Service", WEBHOOK_SERVICE_NAME),
                     ("Deployment", "kfserving-controller-manager"),
                     *((kind, registration.CONFIGURATION_NAME) for kind in WEBHOOK_KINDS)]:
        assert expected in names, f"{expected} missing"
    for obj in objects:
        if obj["kind"] not in {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                               "Namespace", *WEBHOOK_KINDS}:
            assert obj["metadata"]["namespace"] == namespace, obj["metadata"]
    secret_role = ("Role", "kfserving-webhook-cert-role") in names
    assert secret_role is not cert_manager, "the Secret Role exists exactly without cert-manager"

    deployment = _find(objects, "Deployment", "kfserving-controller-manager")
    spec = deployment["spec"]
    # Two replicas that both serve admission; a new one is ready before an old one stops.
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod_labels = spec["template"]["metadata"]["labels"]
    budget = _find(objects, "PodDisruptionBudget", "kfserving-controller-manager")["spec"]
    assert budget["maxUnavailable"] == 1
    assert budget["selector"]["matchLabels"].items() <= pod_labels.items()
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == SERVICE_ACCOUNT
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    container = _container(objects)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]
    env = _env(container)
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert ("KFSERVING_CERT_DIR" in env) is cert_manager
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"webhook-server": 9443, "http": 8080}
    assert {"--webhook-port=9443", "--health-port=8080",
            "--shutdown-drain-seconds=5"} <= set(container["args"])
    assert "--no-leader-elect" not in container["args"]
    for kind, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        probe = container[kind]["httpGet"]
        assert probe["path"] == path
        assert ports[probe["port"]] == 8080
    assert pod["terminationGracePeriodSeconds"] > 5  # longer than the admission drain
    metrics = _find(objects, "Service", "kfserving-controller-manager-metrics-service")
    assert metrics["spec"]["selector"].items() <= pod_labels.items()
    [metrics_port] = metrics["spec"]["ports"]
    assert (metrics_port["name"], ports[metrics_port["targetPort"]]) == ("http-metrics", 8080)
    leases = _find(objects, "Role", "kfserving-leader-election-role")["rules"]
    assert {verb for rule in leases for verb in rule["verbs"]} == {"create", "get", "update"}
    assert all(rule["resources"] == ["leases"] for rule in leases)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]

    service = _find(objects, "Service", WEBHOOK_SERVICE_NAME)
    assert service["spec"]["selector"].items() <= (
        spec["template"]["metadata"]["labels"].items())
    [port] = service["spec"]["ports"]
    assert port["port"] == 443
    assert ports[port["targetPort"]] == 9443

    expected_webhooks = _expected_webhooks(namespace)
    for kind in WEBHOOK_KINDS:
        shipped = _find(objects, kind, registration.CONFIGURATION_NAME)
        assert shipped["webhooks"] == expected_webhooks[kind]["webhooks"], (
            f"the shipped {kind} differs from kfserving_operator/webhooks/registration.py")
        labels = shipped["metadata"]["labels"]
        assert labels[registration.MANAGED_BY_LABEL] == registration.MANAGED_BY
        annotations = shipped["metadata"].get("annotations") or {}
        inject = annotations.get("cert-manager.io/inject-ca-from")
        assert inject == (f"{namespace}/serving-cert" if cert_manager else None)
    trained_models = _find(objects, "ValidatingWebhookConfiguration",
                           legacy_registration.TM_CONFIGURATION_NAME)
    assert trained_models["webhooks"] == expected_webhooks[
        legacy_registration.TM_CONFIGURATION_NAME]["webhooks"], (
        "the shipped TrainedModel webhook differs from webhooks/legacy_registration.py")
    inject = (trained_models["metadata"].get("annotations") or {}).get(
        "cert-manager.io/inject-ca-from")
    assert inject == (f"{namespace}/serving-cert" if cert_manager else None)

    if cert_manager:
        assert volumes[mounts[CERT_DIR]]["secret"]["secretName"] == certificates.SECRET_NAME
        assert env["KFSERVING_CERT_DIR"] == CERT_DIR
        serving = _find(objects, "Certificate", "serving-cert")["spec"]
        assert serving["secretName"] == certificates.SECRET_NAME
        assert set(serving["dnsNames"]) == set(
            certificates.service_dns_names(WEBHOOK_SERVICE_NAME, namespace))
        issuer = serving["issuerRef"]["name"]
        assert ("Issuer", issuer) in names
    else:
        assert CERT_DIR not in mounts
        assert not {kind for kind, _ in names} & set(CERT_MANAGER_KINDS)


def test_kustomize_base_renders() -> None:
    objects = kustomize(BASE)
    _check_operator_objects(objects, cert_manager=False)
    namespace = _find(objects, "Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["control-plane"] == "kfserving-controller-manager"
    assert _container(objects)["image"] == "kfserving-operator:0.1.0"
    assert _find(objects, "ConfigMap")["data"] == OperatorConfig().to_configmap_data()


def test_kustomize_cert_manager_overlay_renders() -> None:
    objects = kustomize(OVERLAY)
    _check_operator_objects(objects, cert_manager=True)
    assert ("Issuer", "kfserving-ca-issuer") in _kinds(objects)


def test_helm_lint(helm: Helm) -> None:
    for extra in ([], ["--set", "certManager.enabled=true", "--set", "namespace.create=true"]):
        out = helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, *extra)
        assert "0 chart(s) failed" in out


def test_helm_template_defaults(helm: Helm) -> None:
    objects = helm.template("--include-crds")
    _check_operator_objects(objects, cert_manager=False)
    assert ("Namespace", NAMESPACE) not in _kinds(objects)
    assert _container(objects)["image"] == "kfserving-operator:0.1.0"
    data = _find(objects, "ConfigMap", CONFIGMAP_NAME)["data"]
    assert {key: json.loads(value) for key, value in data.items()} == _default_config_objects()


def test_helm_template_cert_manager(helm: Helm) -> None:
    objects = helm.template("--include-crds", "--set", "certManager.enabled=true")
    _check_operator_objects(objects, cert_manager=True)


def test_helm_template_other_namespace_and_values(helm: Helm) -> None:
    objects = helm.template(
        "--set", "certManager.enabled=true", "--set", "namespace.create=true",
        "--set", "image.repository=registry.example/kfserving-operator",
        "--set", "image.tag=dev", "--set", "webhook.port=10443",
        "--set", "resources.limits.memory=2Gi", namespace="models-system")
    assert ("Namespace", "models-system") in _kinds(objects)
    container = _container(objects)
    assert container["image"] == "registry.example/kfserving-operator:dev"
    assert "--webhook-port=10443" in container["args"]
    assert container["resources"]["limits"]["memory"] == "2Gi"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["webhook-server"] == 10443
    mutating = _find(objects, "MutatingWebhookConfiguration")
    assert mutating["webhooks"] == _expected_webhooks("models-system")[
        "MutatingWebhookConfiguration"]["webhooks"]
    binding = _find(objects, "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == "models-system"
    serving = _find(objects, "Certificate", "serving-cert")["spec"]
    assert "kfserving-webhook-server-service.models-system.svc" in serving["dnsNames"]


def test_helm_namespace_scoped_rendering(helm: Helm) -> None:
    """watchNamespaces: the operator's flags, webhooks limited to those namespaces exactly as
    the operator registers them, and Roles instead of cluster-wide reads."""
    objects = helm.template("--set", "watchNamespaces={team-a,team-b}")
    assert [a for a in _container(objects)["args"] if a.startswith("--watch-namespace")] == [
        "--watch-namespace=team-a", "--watch-namespace=team-b"]
    expected = _expected_webhooks(NAMESPACE, ("team-a", "team-b"))
    for kind in WEBHOOK_KINDS:
        assert _find(objects, kind, registration.CONFIGURATION_NAME)["webhooks"] == expected[
            kind]["webhooks"]
    trained_models = legacy_registration.TM_CONFIGURATION_NAME
    assert _find(objects, "ValidatingWebhookConfiguration", trained_models)["webhooks"] == \
        expected[trained_models]["webhooks"]
    roles = {o["metadata"]["namespace"] for o in objects
             if o["kind"] == "Role" and o["metadata"]["name"] == "kfserving-manager-role"}
    assert roles == {"team-a", "team-b", NAMESPACE}
    [cluster_role] = [o for o in objects if o["kind"] == "ClusterRole"]
    assert all(rule.get("resourceNames") for rule in cluster_role["rules"])


def test_helm_config_overrides_merge_per_key(helm: Helm, tmp_path: Path) -> None:
    overrides = {
        "ingress": {"ingressDomain": "models.example.org"},
        "storageInitializer": {"memoryLimit": "2Gi", "cpuLimit": "2"},
        "predictors": {"sklearn": {"v2": {"defaultImageVersion": "1.6.0"}}},
        "logger": '{"image": "registry.example/logger:1"}',  # a string is used verbatim
    }
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"config": overrides}))
    objects = helm.template("-f", str(values))
    data = _find(objects, "ConfigMap", CONFIGMAP_NAME)["data"]
    defaults = OperatorConfig().to_configmap_data()
    assert set(data) == set(defaults)
    assert data["logger"] == overrides["logger"]
    for key in set(defaults) - set(overrides):
        assert json.loads(data[key]) == json.loads(defaults[key]), key
    ingress = json.loads(data["ingress"])
    assert ingress["ingressDomain"] == "models.example.org"
    assert ingress["ingressGateway"] == json.loads(defaults["ingress"])["ingressGateway"]

    # The operator reads the chart's merged documents exactly as it reads the bare overrides.
    from_chart = parse_operator_config(data)
    assert from_chart.problems == ()
    bare = {key: value if isinstance(value, str) else json.dumps(value)
            for key, value in overrides.items()}
    from_overrides = parse_operator_config({**defaults, **bare})
    assert from_chart.config == from_overrides.config
    assert from_chart.config.ingress.ingress_domain == "models.example.org"
    assert from_chart.config != OperatorConfig()


def test_helm_service_monitor_toggle(helm: Helm) -> None:
    assert "ServiceMonitor" not in {kind for kind, _ in _kinds(helm.template())}
    objects = helm.template("--set", "metrics.serviceMonitor.enabled=true",
                            "--set", "metrics.serviceMonitor.labels.release=prometheus",
                            "--set", "metrics.serviceMonitor.interval=15s")
    monitor = _find(objects, "ServiceMonitor", "kfserving-controller-manager")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    [endpoint] = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == (
        "http-metrics", "/metrics", "15s")
    # It selects the metrics Service, and only that one.
    selected = [service["metadata"]["name"] for service in objects
                if service["kind"] == "Service" and monitor["spec"]["selector"][
                    "matchLabels"].items() <= service["metadata"]["labels"].items()]
    assert selected == ["kfserving-controller-manager-metrics-service"]


def test_helm_replicas_and_leader_election_values(helm: Helm) -> None:
    objects = helm.template("--set", "replicas=3", "--set", "leaderElection.leaseDuration=30",
                            "--set", "podDisruptionBudget.enabled=false")
    assert _find(objects, "Deployment")["spec"]["replicas"] == 3
    assert "--leader-election-lease-duration=30" in _container(objects)["args"]
    assert "PodDisruptionBudget" not in {kind for kind, _ in _kinds(objects)}
    single = helm.template("--set", "replicas=1", "--set", "leaderElection.enabled=false")
    assert "--no-leader-elect" in _container(single)["args"]
    assert ("Role", "kfserving-leader-election-role") not in _kinds(single)
    with pytest.raises(CommandFailed, match=r"replicas > 1 needs leaderElection\.enabled"):
        helm.template("--set", "leaderElection.enabled=false")


def test_helm_rejects_unknown_config_key(helm: Helm) -> None:
    with pytest.raises(CommandFailed, match=r"config\.ingres is not an inferenceservice-config"):
        helm.template("--set", "config.ingres.ingressDomain=x")


# -- the API server's verdict -------------------------------------------------------------------


@pytest.fixture(scope="module")
def operator_namespace(cluster: Cluster) -> str:
    """kfserving-system must exist for namespaced dry-runs; it is shared, so never deleted."""
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    return NAMESPACE


STAND_IN_CERT_MANAGER_CRDS: Objects = [
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                      "singular": kind.lower()},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {"type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True}},
                }},
            }],
        },
    }
    for group, kind, plural in (("cert-manager.io", "Issuer", "issuers"),
                                ("cert-manager.io", "Certificate", "certificates"),
                                ("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"))
]


@pytest.fixture(scope="module")
def cert_manager_kinds(cluster: Cluster) -> Iterator[None]:
    """Tiny stand-in CRDs for cert-manager's Issuer and Certificate, unless the real ones exist."""
    present = set(cluster.kubectl("get", "crd", "--ignore-not-found", "-o", "name",
                                  *(c["metadata"]["name"] for c in STAND_IN_CERT_MANAGER_CRDS)
                                  ).split())
    missing = [crd for crd in STAND_IN_CERT_MANAGER_CRDS
               if f"customresourcedefinition.apiextensions.k8s.io/{crd['metadata']['name']}"
               not in present]
    names = [crd["metadata"]["name"] for crd in missing]
    if missing:
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(missing))
        for name in names:
            wait_established(cluster, name)
    try:
        yield
    finally:
        if names:
            cluster.kubectl("delete", "crd", *names, "--ignore-not-found", "--wait=false",
                            check=False)


def _dry_run(cluster: Cluster, objects: Objects, server_side: bool) -> None:
    # A test operator running in this session may hold the webhook configurations' real name
    # with a `url` clientConfig, which another field manager's `service` could not replace;
    # the configurations go through the dry-run under a unique name instead (as a create).
    suffix = uuid.uuid4().hex[:8]
    objects = copy.deepcopy(objects)
    for obj in objects:
        if obj["kind"] in WEBHOOK_KINDS:
            obj["metadata"]["name"] += f"-dry-run-{suffix}"
    # The same for the InferenceService CRD's conversion webhook, whose name cannot change: a
    # local test operator points it at a `url`, so the CRD goes through with that clientConfig.
    live = json.loads(cluster.kubectl("get", "crd", "inferenceservices.serving.kubeflow.org",
                                      "-o", "json", check=False) or "{}")
    live_client = (((live.get("spec") or {}).get("conversion") or {}).get("webhook")
                   or {}).get("clientConfig") or {}
    for obj in objects:
        if (obj["kind"] == "CustomResourceDefinition" and live_client.get("url")
                and obj["metadata"]["name"] == "inferenceservices.serving.kubeflow.org"):
            obj["spec"]["conversion"]["webhook"]["clientConfig"] = live_client
    text = yaml.safe_dump_all(objects)
    mode = ["--server-side", "--force-conflicts"] if server_side else []
    out = cluster.kubectl("apply", "--dry-run=server", *mode, "-f", "-", input=text)
    reported = [line for line in out.splitlines() if line.strip()]
    assert len(reported) == len(objects), out
    assert all("(server dry run)" in line for line in reported), out


RENDERINGS = ("kustomize-base", "kustomize-cert-manager", "helm-defaults", "helm-cert-manager",
              "helm-service-monitor")


def _render(which: str, helm: Helm) -> Objects:
    if which == "kustomize-base":
        return kustomize(BASE)
    if which == "kustomize-cert-manager":
        return kustomize(OVERLAY)
    if which == "helm-defaults":
        return helm.template("--include-crds", "--set", "namespace.create=true")
    if which == "helm-service-monitor":
        return helm.template("--include-crds", "--set", "namespace.create=true",
                             "--set", "metrics.serviceMonitor.enabled=true")
    return helm.template("--include-crds", "--set", "namespace.create=true",
                         "--set", "certManager.enabled=true")


@pytest.mark.parametrize("server_side", [False, True], ids=["client-apply", "server-apply"])
@pytest.mark.parametrize("which", RENDERINGS)
def test_rendered_objects_pass_server_side_dry_run(
        cluster: Cluster, operator_namespace: str, cert_manager_kinds: None, helm: Helm,
        which: str, server_side: bool) -> None:
    objects = _render(which, helm)
    assert ("Namespace", operator_namespace) in _kinds(objects)
    _dry_run(cluster, objects, server_side)


# -- RBAC, exercised as the ServiceAccount ------------------------------------------------------


class OperatorIdentity:
    """A copy of the base's RBAC, bound to a ServiceAccount in a fresh namespace.

    The copy has unique names so it can be applied for real without touching a shared
    ``kfserving-system``; the fresh namespace plays the operator's namespace.
    """

    def __init__(self, cluster: Cluster, suffix: str) -> None:
        self.cluster = cluster
        self.namespace = f"t-rbac-{suffix}"
        self.user = f"system:serviceaccount:{self.namespace}:{SERVICE_ACCOUNT}"
        self.cluster_objects: list[tuple[str, str]] = []
        self.objects: Objects = []
        for obj in kustomize(BASE):
            if obj["kind"] not in {"ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                                   "Role", "RoleBinding"}:
                continue
            obj = copy.deepcopy(obj)
            meta = obj["metadata"]
            if "namespace" in meta:
                meta["namespace"] = self.namespace
            else:
                meta["name"] = f"{meta['name']}-{suffix}"
                self.cluster_objects.append((obj["kind"].lower(), meta["name"]))
            if obj["kind"] == "ClusterRoleBinding":
                obj["roleRef"]["name"] = f"{obj['roleRef']['name']}-{suffix}"
            for subject in obj.get("subjects", []):
                subject["namespace"] = self.namespace
            self.objects.append(obj)
        kinds = sorted(obj["kind"] for obj in self.objects)
        assert kinds == ["ClusterRole", "ClusterRole", "ClusterRoleBinding",
                         "ClusterRoleBinding", "Role", "Role", "RoleBinding", "RoleBinding",
                         "ServiceAccount"]

    def can(self, verb: str, resource: str, *, namespace: str | None = None,
            subresource: str | None = None) -> bool:
        if "." in resource and "/" not in resource:
            # `<plural>.<group>`: asked through a SubjectAccessReview, which (unlike
            # `kubectl auth can-i`) needs no CRD served for it (Knative's Revisions).
            plural, group = resource.split(".", 1)
            attributes = {"verb": verb, "group": group, "resource": plural,
                          "namespace": namespace or "", "subresource": subresource or ""}
            review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                      "spec": {"user": self.user, "resourceAttributes": attributes}}
            out = self.cluster.kubectl("create", "-o", "json", "-f", "-",
                                       input=json.dumps(review))
            return bool(json.loads(out)["status"].get("allowed"))
        args = ["auth", "can-i", verb, resource, "--as", self.user]
        args += ["--all-namespaces"] if namespace is None else ["-n", namespace]
        if subresource:
            args += ["--subresource", subresource]
        answer = self.cluster.kubectl(*args, check=False).strip()
        assert answer in {"yes", "no"}, answer
        return answer == "yes"

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return self.cluster.kubectl(*args, "--as", self.user, input=input, check=check)


@pytest.fixture(scope="module")
def identity(cluster: Cluster) -> Iterator[OperatorIdentity]:
    ident = OperatorIdentity(cluster, uuid.uuid4().hex[:8])
    cluster.kubectl("create", "namespace", ident.namespace)
    try:
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(ident.objects))
        yield ident
    finally:
        for kind, name in ident.cluster_objects:
            cluster.kubectl("delete", kind, name, "--ignore-not-found", check=False)
        cluster.kubectl("delete", "namespace", ident.namespace, "--wait=false",
                        "--ignore-not-found", check=False)


ELSEWHERE = "some-models-namespace"  # where InferenceServices live; need not exist for can-i
HOOKS = ("mutatingwebhookconfigurations.admissionregistration.k8s.io",
         "validatingwebhookconfigurations.admissionregistration.k8s.io")

# (verb, resource, namespace: "own" | "elsewhere" | None for cluster-wide, subresource)
NEEDED: list[tuple[str, str, str | None, str | None]] = [
    *[(verb, resource, None, None)
      for verb in ("get", "list", "watch")
      for resource in ("inferenceservices.serving.kubeflow.org", "services.serving.knative.dev",
                       "virtualservices.networking.istio.io", "services", "configmaps")],
    *[(verb, "customresourcedefinitions.apiextensions.k8s.io", None, None)
      for verb in ("list", "watch")],
    ("patch", "inferenceservices.serving.kubeflow.org", "elsewhere", "status"),
    *[(verb, "trainedmodels.serving.kubeflow.org", None, None)
      for verb in ("get", "list", "watch")],
    ("patch", "trainedmodels.serving.kubeflow.org", "elsewhere", None),
    ("patch", "trainedmodels.serving.kubeflow.org", "elsewhere", "status"),
    *[(verb, "configmaps", "elsewhere", None) for verb in ("create", "patch")],
    *[(verb, "customresourcedefinitions.apiextensions.k8s.io/"
              "inferenceservices.serving.kubeflow.org", None, None) for verb in ("get", "patch")],
    *[(verb, f"{HOOKS[1]}/{legacy_registration.TM_CONFIGURATION_NAME}", None, None)
      for verb in ("get", "create", "patch", "delete")],
    ("update", "inferenceservices.serving.kubeflow.org", "elsewhere", "finalizers"),
    *[(verb, resource, "elsewhere", None)
      for verb in ("create", "patch", "delete")
      for resource in ("services.serving.knative.dev", "virtualservices.networking.istio.io",
                       "services")],
    *[(verb, resource, "elsewhere", None)  # raw deployment mode's children
      for verb in ("get", "list", "watch", "create", "patch", "delete")
      for resource in ("deployments.apps", "horizontalpodautoscalers.autoscaling",
                       "ingresses.networking.k8s.io", "httproutes.gateway.networking.k8s.io")],
    *[(verb, "replicasets.apps", "elsewhere", None) for verb in ("get", "list")],
    # raw mode: the pods and ReplicaSets of raw Deployments, label-selected informers
    *[("watch", resource, None, None) for resource in ("pods", "replicasets.apps")],
    ("get", "serviceaccounts", "elsewhere", None),
    ("get", "secrets", "elsewhere", None),
    ("get", "revisions.serving.knative.dev", "elsewhere", None),
    ("get", "pods", "elsewhere", None),
    ("list", "pods", "elsewhere", None),
    ("create", "events", "elsewhere", None),
    ("create", "events", "own", None),
    ("get", f"configmaps/{CONFIGMAP_NAME}", "own", None),
    *[(verb, f"secrets/{certificates.SECRET_NAME}", "own", None)
      for verb in ("get", "create", "patch")],
    *[(verb, f"{hook}/{registration.CONFIGURATION_NAME}", None, None)
      for verb in ("get", "create", "patch", "delete") for hook in HOOKS],
    ("create", "leases.coordination.k8s.io", "own", None),
    *[(verb, f"leases.coordination.k8s.io/{LEASE_NAME}", "own", None)
      for verb in ("get", "update")],
]

DENIED: list[tuple[str, str, str | None, str | None]] = [
    ("list", "secrets", None, None),
    ("create", "secrets", "elsewhere", None),
    ("patch", "secrets/some-other-secret", "own", None),
    ("create", "secrets/some-other-secret", "own", None),
    ("delete", f"secrets/{certificates.SECRET_NAME}", "own", None),
    *[(verb, "inferenceservices.serving.kubeflow.org", "elsewhere", None)
      for verb in ("create", "update", "patch", "delete")],
    ("update", "inferenceservices.serving.kubeflow.org", "elsewhere", "status"),
    ("patch", "services.serving.knative.dev", "elsewhere", "status"),
    *[(verb, f"{hook}/some-other-webhook", None, None)
      for verb in ("create", "patch", "delete") for hook in HOOKS],
    ("list", HOOKS[0], None, None),
    ("update", "configmaps", "own", None),
    ("create", "pods", "elsewhere", None),
    ("delete", "pods", "elsewhere", None),
    ("list", "revisions.serving.knative.dev", None, None),
    ("patch", "revisions.serving.knative.dev", "elsewhere", None),
    ("list", "namespaces", None, None),
    ("delete", "namespaces", None, None),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", None, None),
    ("create", "customresourcedefinitions.apiextensions.k8s.io", None, None),
    ("patch", "customresourcedefinitions.apiextensions.k8s.io/some-other-crd", None, None),
    *[(verb, "trainedmodels.serving.kubeflow.org", "elsewhere", None)
      for verb in ("create", "delete", "update")],
    ("create", f"{HOOKS[0]}/{legacy_registration.TM_CONFIGURATION_NAME}", None, None),
    ("update", "leases.coordination.k8s.io/some-other-lease", "own", None),
    ("delete", f"leases.coordination.k8s.io/{LEASE_NAME}", "own", None),
    ("create", "leases.coordination.k8s.io", "elsewhere", None),
    ("list", "leases.coordination.k8s.io", "own", None),
]


def _answers(identity: OperatorIdentity,
             checks: list[tuple[str, str, str | None, str | None]]) -> dict[str, bool]:
    def ask(check: tuple[str, str, str | None, str | None]) -> tuple[str, bool]:
        verb, resource, where, subresource = check
        namespace = {"own": identity.namespace, "elsewhere": ELSEWHERE, None: None}[where]
        label = f"{verb} {resource}{'/' + subresource if subresource else ''} in {where or 'all'}"
        return label, identity.can(verb, resource, namespace=namespace, subresource=subresource)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(ask, checks))


def test_rbac_grants_everything_the_operator_does(identity: OperatorIdentity) -> None:
    answers = _answers(identity, NEEDED)
    assert [label for label, allowed in answers.items() if not allowed] == []


def test_rbac_grants_nothing_more(identity: OperatorIdentity) -> None:
    answers = _answers(identity, DENIED)
    assert [label for label, allowed in answers.items() if allowed] == []


def test_rbac_real_requests_as_the_service_account(cluster: Cluster,
                                                   identity: OperatorIdentity) -> None:
    """Real requests (as the operator makes them: server-side apply, watch) as the SA."""
    ns = identity.namespace
    apply = ["apply", "--server-side", "--field-manager=kfserving-operator"]

    # The webhook certificate Secret, exactly as the operator writes it; any other name is not.
    secret = certificates.new_secret(WEBHOOK_SERVICE_NAME, ns)
    identity.kubectl(*apply, "-f", "-", input=yaml.safe_dump(secret))
    assert identity.kubectl("get", "secret", certificates.SECRET_NAME, "-n", ns, "-o", "name")
    other = {**secret, "metadata": {"name": "not-ours", "namespace": ns}}
    with pytest.raises(KubectlError, match="forbidden"):
        identity.kubectl(*apply, "-f", "-", input=yaml.safe_dump(other))
    assert cluster.kubectl("get", "secret", "not-ours", "-n", ns, "--ignore-not-found") == ""

    # The children of an InferenceService, created by server-side apply and deleted again.
    children = [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "rbac-probe", "namespace": ns},
         "spec": {"type": "ExternalName",
                  "externalName": "knative-local-gateway.istio-system.svc.cluster.local"}},
        {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
         "metadata": {"name": "rbac-probe-predictor-default", "namespace": ns},
         "spec": {"template": {"spec": {"containers": [{"image": "example/model:1"}]}}}},
        {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
         "metadata": {"name": "rbac-probe", "namespace": ns},
         "spec": {"hosts": ["rbac-probe.example.com"],
                  "http": [{"route": [{"destination": {"host": "rbac-probe.example.com"}}]}]}},
    ]
    identity.kubectl(*apply, "-f", "-", input=yaml.safe_dump_all(children))
    identity.kubectl("delete", "-f", "-", "--wait=false", input=yaml.safe_dump_all(children))

    # The leader-election Lease: created, read and renewed (PUT) as the elector does.
    lease = lease_object(LEASE_NAME, ns, next_record(None, "probe", 15, datetime.now(UTC)),
                         None)
    identity.kubectl("create", "-f", "-", input=yaml.safe_dump(lease))
    current = json.loads(identity.kubectl("get", "lease", LEASE_NAME, "-n", ns, "-o", "json"))
    renewed = lease_object(LEASE_NAME, ns, next_record(record_of(current), "probe", 15,
                                                         datetime.now(UTC)),
                           current["metadata"]["resourceVersion"])
    identity.kubectl("replace", "-f", "-", input=yaml.safe_dump(renewed))

    # An Event, as the reconciler posts them.
    event = {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": "rbac-probe.1", "namespace": ns},
             "involvedObject": {"apiVersion": "v1", "kind": "Service", "name": "rbac-probe",
                                "namespace": ns},
             "type": "Normal", "reason": "Probe", "message": "rbac probe"}
    identity.kubectl("create", "-f", "-", input=yaml.safe_dump(event))

    # kopf's cluster-wide list-then-watch of every resource the operator follows.
    for path in ("/apis/serving.kubeflow.org/v1beta1/inferenceservices",
                 "/apis/serving.kubeflow.org/v1alpha1/trainedmodels",
                 "/apis/serving.knative.dev/v1/services",
                 "/apis/networking.istio.io/v1beta1/virtualservices",
                 "/api/v1/services", "/api/v1/configmaps",
                 "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"):
        listed = json.loads(identity.kubectl("get", "--raw", f"{path}?limit=1"))
        assert "items" in listed, path
        identity.kubectl("get", "--raw", f"{path}?watch=1&timeoutSeconds=1&resourceVersion="
                         f"{listed['metadata']['resourceVersion']}")

    # Its webhook configurations; dry-run, because the shared cluster may have a live
    # registration of a running test operator under the same name.
    def client_config(path: str) -> dict[str, Any]:
        return registration.service_client_config(WEBHOOK_SERVICE_NAME, ns, path,
                                                  b"not-a-real-ca")

    hooks = [registration.mutating_configuration(client_config, ns),
             registration.validating_configuration(client_config),
             legacy_registration.trained_model_configuration(client_config)]
    identity.kubectl(*apply, "--force-conflicts", "--dry-run=server", "-f", "-",
                     input=yaml.safe_dump_all(hooks))


# -- values schema, helm upgrade and helm uninstall on a real cluster -----------------------

@pytest.mark.parametrize(("setting", "complaint"), [
    ("webhok.port=9443", "additional properties 'webhok' not allowed"),
    ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
    ("webhook.port=http", "/webhook/port"),
    ("resources.limits.cpu=-1", "/resources/limits/cpu"),
    ("certManager.enabled=yes", "/certManager/enabled"),
    ("configUpgradePolicy=merge", "/configUpgradePolicy"),
])
def test_helm_values_schema_refuses_unknown_and_mistyped_values(
        helm: Helm, setting: str, complaint: str) -> None:
    with pytest.raises(CommandFailed) as refused:
        helm.template("--set", setting)
    assert complaint in str(refused.value)


def _ingress_domain(cluster: Cluster) -> str:
    data = cluster.get_json("configmap", CONFIGMAP_NAME, "-n", NAMESPACE)["data"]
    return str(json.loads(data["ingress"])["ingressDomain"])


def _cert_secret(cluster: Cluster) -> dict[str, Any] | None:
    out = cluster.kubectl("get", "secret", certificates.SECRET_NAME, "-n", NAMESPACE,
                          "-o", "json", "--ignore-not-found")
    return json.loads(out) if out else None


def test_helm_upgrade_keeps_config_edits_and_uninstall_removes_the_certificate(
        bare_cluster: Cluster, helm: Helm, tmp_path: Path) -> None:
    """Installed with the real helm on a control plane of its own: a kubectl edit of
    inferenceservice-config survives `helm upgrade` (configUpgradePolicy=keep, the default)
    and is replaced with reset; `helm uninstall` removes the Secret the operator created,
    unless certificate.keepOnUninstall is set."""
    cluster = bare_cluster
    release = ["kfserving-operator", str(CHART), "--namespace", NAMESPACE,
               "--kubeconfig", cluster.kubeconfig]
    default_domain = _default_config_objects()["ingress"]["ingressDomain"]
    helm("install", *release, "--create-namespace")
    # The operator (cluster mode, outside a pod) issues its certificate into the Secret.
    with run_operator(cluster, tmp_path, webhook_mode="cluster"):
        secret = _cert_secret(cluster)
    assert secret is not None
    service = cluster.get_json("service", WEBHOOK_SERVICE_NAME, "-n", NAMESPACE)
    owned_by_service = [{"apiVersion": "v1", "kind": "Service",
                         "name": WEBHOOK_SERVICE_NAME, "uid": service["metadata"]["uid"]}]
    assert secret["metadata"]["ownerReferences"] == owned_by_service
    # The config in force the operator persists is the installation's too.
    last_good = cluster.get_json("configmap", LAST_GOOD_CONFIGMAP_NAME, "-n", NAMESPACE)
    assert last_good["metadata"]["ownerReferences"] == owned_by_service

    edited = dict(json.loads(cluster.get_json("configmap", CONFIGMAP_NAME, "-n", NAMESPACE)
                             ["data"]["ingress"]), ingressDomain="edited.example.org")
    cluster.kubectl("patch", "configmap", CONFIGMAP_NAME, "-n", NAMESPACE, "--type=merge",
                    "-p", json.dumps({"data": {"ingress": json.dumps(edited)}}))
    helm("upgrade", *release)
    assert _ingress_domain(cluster) == "edited.example.org"
    # An upgrade keeps the Service, so the Secret stays with it.
    assert _cert_secret(cluster) is not None
    helm("upgrade", *release, "--set", "configUpgradePolicy=reset")
    assert _ingress_domain(cluster) == default_domain

    helm("uninstall", *release[:1], "--namespace", NAMESPACE, "--kubeconfig",
         cluster.kubeconfig, "--wait")
    assert wait_for(lambda: _cert_secret(cluster) is None, timeout=60,
                    message="the garbage collector to delete the certificate Secret")
    assert wait_for(lambda: not cluster.kubectl(
        "get", "configmap", LAST_GOOD_CONFIGMAP_NAME, "-n", NAMESPACE, "--ignore-not-found"),
        timeout=60, message="the garbage collector to delete the last-good ConfigMap")
    for kind in ("configmap/" + CONFIGMAP_NAME, "service/" + WEBHOOK_SERVICE_NAME):
        assert not cluster.kubectl("get", kind, "-n", NAMESPACE, "--ignore-not-found")

    # certificate.keepOnUninstall: the operator adds no ownerReference and the Secret stays.
    helm("install", *release, "--set", "certificate.keepOnUninstall=true")
    deployment = cluster.get_json("deployment", "kfserving-controller-manager", "-n", NAMESPACE)
    env = _env(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["KFSERVING_KEEP_CERT_SECRET"] == "true"
    (tmp_path / "keep").mkdir()
    with run_operator(cluster, tmp_path / "keep", webhook_mode="cluster",
                      extra_env={"KFSERVING_KEEP_CERT_SECRET": "true"}):
        pass
    kept = _cert_secret(cluster)
    assert kept is not None and "ownerReferences" not in kept["metadata"]
    helm("uninstall", *release[:1], "--namespace", NAMESPACE, "--kubeconfig",
         cluster.kubeconfig, "--wait")
    time.sleep(2)  # give the garbage collector the chance it must not take
    assert _cert_secret(cluster) is not None
