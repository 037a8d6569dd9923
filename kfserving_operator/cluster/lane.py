"""The Knative lane: real Knative Serving on the local control plane.

Started by ``kfserving-operator cluster up --knative`` on top of the loopback plane, inside
the plane's isolated network namespace (:mod:`kfserving_operator.cluster.netns`):

- kube-scheduler, and KWOK with one fake Node: KWOK plays the kubelet (pods turn Running
  and Ready by its stages; no container ever runs);
- Knative Serving v0.42.2 (Knative 1.15.2): upstream's webhook and autoscaler, our
  controller main (upstream's reconcilers with the health-probe port off) and our KIngress
  status reconciler for the Istio ingress class (the only piece not from upstream; there is
  no networking layer). ``hack/knativebin`` builds them and says why each deviation exists;
- Knative's objects, read at run time from the Go modules the build downloaded (no copy of
  upstream YAML lives in this repository): CRDs, ``config-*`` ConfigMaps, webhook
  configurations; plus small objects of our own where the in-cluster ones cannot work out of
  a pod (the webhook Service as an ExternalName to ``localhost``, an activator Service
  without pods, the fake Node);
- the Istio VirtualService CRD: the project's development stand-in (Istio itself does not
  build from the module proxy and has no part to play without a data plane).

Every Knative process authenticates as its own user (``knative-serving``), kube-scheduler
as ``system:kube-scheduler`` and KWOK as ``kwok``, so the apiserver's audit log attributes
each write to whoever made it (the operator's zero-writes-at-idle check relies on it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from kfserving_operator.cluster import common, dataplane
from kfserving_operator.cluster import node as real_node
from kfserving_operator.cluster.common import (
    ControlPlaneState,
    free_port,
    issue_user_kubeconfig,
    process_alive,
    project_root,
)
from kfserving_operator.cluster.modelstore import ModelStore, credential_objects

SYSTEM_NAMESPACE = "knative-serving"
KNATIVE_USER = "knative-serving"
SCHEDULER_USER = "system:kube-scheduler"
KWOK_USER = "kwok"
NODE_NAME = "kwok-node-0"
INGRESS_DOMAIN = "example.com"
# Knative resolves image tags to digests by asking the registry, unless the registry is
# listed here. The lane has no network, so every registry the examples and the operator's
# default runtimes use is listed; nothing is ever pulled.
REGISTRIES_SKIPPING_TAG_RESOLVING = (
    "kind.local", "ko.local", "dev.local", "docker.io", "index.docker.io", "gcr.io",
    "ghcr.io", "quay.io", "nvcr.io", "mcr.microsoft.com", "registry.k8s.io",
    "public.ecr.aws", "us-docker.pkg.dev", "example.com",
)
# Started in this order, stopped in reverse.
LANE_TOOLS = ("kube-scheduler", "kwok", "kubelet", "kube-proxy", "coredns", "minio",
              "traefik", "knative-webhook", "knative-controller", "knative-autoscaler",
              "knative-activator")
# KWOK's node is tainted: pods run on the real node unless they tolerate the taint. A
# namespace with these annotations (the apiserver's PodNodeSelector and
# PodTolerationRestriction admission plugins) sends all its pods to KWOK instead: the
# control-plane scenarios that fake failures with KWOK stages, or that use images nobody
# built here, run there.
KWOK_TAINT = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}
KWOK_NAMESPACE_ANNOTATIONS = {
    "scheduler.alpha.kubernetes.io/node-selector": "type=kwok",
    "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps(
        [{"operator": "Equal", **KWOK_TAINT}]),
}
READY_TIMEOUT_SECONDS = 120.0


class LaneError(RuntimeError):
    """The Knative lane could not be started."""


@dataclass(frozen=True)
class UpstreamModules:
    """Where the Go modules the lane build downloaded live (read-only module cache)."""

    serving_version: str
    serving: Path
    networking: Path
    caching: Path
    kwok: Path


def _required_version(go_mod: Path, module: str) -> str:
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(\S+)", go_mod.read_text(),
                      re.MULTILINE)
    if match is None:
        raise LaneError(f"{go_mod} does not require {module}")
    return match.group(1)


def _module_dir(work_dir: Path, module: str, version: str) -> Path:
    """The module's directory in the Go module cache, downloading it if it is missing."""
    env = {**os.environ, "GOWORK": "off", "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    try:
        result = subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"],
                                cwd=work_dir, env=env, capture_output=True, text=True,
                                timeout=600)
    except OSError as exc:
        raise LaneError(f"cannot run `go mod download` for {module}: {exc}") from exc
    if result.returncode != 0:
        raise LaneError(f"go mod download {module}@{version} failed: {result.stderr.strip()}")
    return Path(json.loads(result.stdout)["Dir"])


def upstream_modules(root: Path) -> UpstreamModules:
    """Locate Knative's and KWOK's modules at the versions ``hack/`` pins.

    Needs the Go toolchain; call it before entering the isolated namespace (a module cache
    miss downloads from the module proxy).
    """
    knative_mod = root / "hack" / "knativebin" / "go.mod"
    kwok_mod = root / "hack" / "kwokbin" / "go.mod"
    pins = {module: _required_version(knative_mod, module)
            for module in ("knative.dev/serving", "knative.dev/networking")}
    # caching is only an indirect requirement; its pin is in the same go.mod.
    pins["knative.dev/caching"] = _required_version(knative_mod, "knative.dev/caching")
    return UpstreamModules(
        serving_version=pins["knative.dev/serving"],
        serving=_module_dir(knative_mod.parent, "knative.dev/serving", pins["knative.dev/serving"]),
        networking=_module_dir(knative_mod.parent, "knative.dev/networking",
                               pins["knative.dev/networking"]),
        caching=_module_dir(knative_mod.parent, "knative.dev/caching",
                            pins["knative.dev/caching"]),
        kwok=_module_dir(kwok_mod.parent, "sigs.k8s.io/kwok",
                         _required_version(kwok_mod, "sigs.k8s.io/kwok")),
    )


def _documents(*paths: Path) -> Iterator[dict[str, Any]]:
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield doc


def knative_crds(modules: UpstreamModules) -> list[dict[str, Any]]:
    """Serving's, networking's and caching's CRDs, as the modules ship them."""
    serving = sorted((modules.serving / "config" / "core" / "300-resources").glob("*.yaml"))
    networking = [modules.networking / "config" / f"{name}.yaml"
                  for name in ("certificate", "ingress", "serverlessservice", "domain-claim")]
    caching = [modules.caching / "config" / "image.yaml"]
    return [doc for doc in _documents(*serving, *networking, *caching)
            if doc.get("kind") == "CustomResourceDefinition"]


def knative_config(modules: UpstreamModules) -> list[dict[str, Any]]:
    """The namespace, the ``config-*`` ConfigMaps (upstream's, three keys changed), the
    empty webhook certificate Secret, and the two Services of our own."""
    core = modules.serving / "config" / "core"
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}},
    ]
    configmaps = sorted((core / "configmaps").glob("*.yaml"))
    configmaps.append(modules.networking / "config" / "config-network.yaml")
    for doc in _documents(*configmaps, core / "webhooks" / "secret.yaml"):
        if doc.get("kind") not in ("ConfigMap", "Secret"):
            continue
        data = doc.setdefault("data", {}) if doc["kind"] == "ConfigMap" else None
        name = doc["metadata"]["name"]
        if name == "config-deployment" and data is not None:
            # The queue-proxy built from Knative's module and imported into the real node
            # (nothing is pulled on the lane).
            data["queue-sidecar-image"] = (
                f"kind.local/knative-serving/queue:{modules.serving_version}")
            data["registries-skipping-tag-resolving"] = ",".join(
                REGISTRIES_SKIPPING_TAG_RESOLVING)
            # Knative looks at a revision's crashing pods only when its Deployment changes,
            # which for a crash loop happens when the progress deadline passes (600 s
            # upstream). Images are local and models small here: 90 s is plenty for a
            # revision that works, and a failing one says why within a test's patience.
            data["progress-deadline"] = "90s"
        if name == "config-autoscaler" and data is not None:
            # Knative's minimum grace before the last pod of an idle revision goes (30 s
            # upstream): scale to zero within a test's patience.
            data["scale-to-zero-grace-period"] = "6s"
        if name == "config-network" and data is not None:
            # KIngresses are Traefik's (cluster.dataplane): a real router for the lane.
            data["ingress-class"] = dataplane.INGRESS_CLASS
        if name == "config-domain" and data is not None:
            data[INGRESS_DOMAIN] = ""  # URLs as the operator's default ingress domain
        objects.append(doc)
    objects.append(_webhook_service())
    return objects


def _webhook_service() -> dict[str, Any]:
    """``webhook.knative-serving`` as an ExternalName to localhost.

    The apiserver resolves it to ``https://localhost:<port>`` (the webhook's port is set in
    each webhook configuration) and still checks the certificate for
    ``webhook.knative-serving.svc``, which Knative's own certificate controller issues.
    """
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "webhook", "namespace": SYSTEM_NAMESPACE,
                     "labels": {"app.kubernetes.io/part-of": "kfserving-operator-dev"}},
        "spec": {"type": "ExternalName", "externalName": "localhost"},
    }


def knative_webhooks(modules: UpstreamModules, webhook_port: int) -> list[dict[str, Any]]:
    """Upstream's webhook configurations, pointed at the webhook's port on localhost."""
    paths = sorted((modules.serving / "config" / "core" / "webhooks").glob("*.yaml"))
    hooks = []
    for doc in _documents(*paths):
        if doc.get("kind") not in ("MutatingWebhookConfiguration",
                                   "ValidatingWebhookConfiguration"):
            continue
        for hook in doc.get("webhooks", []):
            hook["clientConfig"]["service"]["port"] = webhook_port
        hooks.append(doc)
    return hooks


def kwok_stages(modules: UpstreamModules) -> list[dict[str, Any]]:
    """KWOK's default stages, as its module ships them (the binary has none built in).

    The node stages initialise the fake Node and keep its Lease fresh (so the node-lifecycle
    controller keeps it Ready); the general pod stages take a pod through its init
    containers to Running and Ready, and on deletion away. They are applied as ``Stage``
    objects (KWOK runs with ``--enable-crds=Stage``), so tests can add stages of their own
    with ``kubectl apply`` to fake failures: image pulls, crash loops, OOM kills.
    """
    stage_root = modules.kwok / "kustomize" / "stage"
    paths = []
    for group in ("node/fast", "node/heartbeat-with-lease", "pod/general"):
        kustomization = yaml.safe_load((stage_root / group / "kustomization.yaml").read_text())
        paths += [stage_root / group / resource for resource in kustomization["resources"]]
    stages = [doc for doc in _documents(*paths) if doc.get("kind") == "Stage"]
    for stage in stages:
        # Upstream's stages wait 1 s plus up to 5 s of jitter at each step (pod-delete up to
        # the grace period, 300 s for Knative's pods). A kubelet with the image cached and a
        # server that exits on SIGTERM takes about none of that; without the delays a pod is
        # Ready (or gone) within a moment, as in the measured lane.
        stage["spec"].pop("delay", None)
    return stages


def kwok_stage_crd(modules: UpstreamModules) -> dict[str, Any]:
    """KWOK's Stage CRD, from its module."""
    path = modules.kwok / "kustomize" / "crd" / "bases" / "kwok.x-k8s.io_stages.yaml"
    return next(doc for doc in _documents(path) if doc.get("kind") == "CustomResourceDefinition")


# KWOK reads ~/.kwok/kwok.yaml unless told otherwise; the lane gives it a file with no
# KwokConfiguration in it, so KWOK's own defaults apply (a present but empty one would
# leave its worker counts at zero).
KWOK_CONFIG_FILE = "# no KwokConfiguration: KWOK's defaults; stages come from Stage objects\n"


def fake_node() -> dict[str, Any]:
    """The one Node KWOK manages: roomy enough for every example, GPUs included."""
    capacity = {"cpu": "64", "memory": "512Gi", "pods": "250", "nvidia.com/gpu": "8",
                "ephemeral-storage": "1Ti"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "type": "kwok"},
        },
        "spec": {"taints": [KWOK_TAINT]},
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def knative_env(component: str, metrics_port: int, profiling_port: int) -> dict[str, str]:
    """What a Knative process reads from its pod's environment."""
    return {
        "SYSTEM_NAMESPACE": SYSTEM_NAMESPACE,
        "CONFIG_LOGGING_NAME": "config-logging",
        "CONFIG_OBSERVABILITY_NAME": "config-observability",
        "METRICS_DOMAIN": "knative.dev/internal/serving",
        "METRICS_PROMETHEUS_HOST": "127.0.0.1",
        "METRICS_PROMETHEUS_PORT": str(metrics_port),
        "PROFILING_PORT": str(profiling_port),
        "POD_NAME": f"{component}-lane",
    }


# An image the node image build made (any with Python will do for the probe).
PROBE_IMAGE = "kind.local/kfserving/sklearnserver:lane"


def probe_service(name: str) -> dict[str, Any]:
    """A minimal Knative Service used to prove the lane can make one Ready: a real
    container on the real node, behind a real queue-proxy."""
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{
            "image": PROBE_IMAGE,
            "command": ["python", "-m", "http.server", "8080"],
            "ports": [{"containerPort": 8080}],
        }]}}},
    }


def probe_name() -> str:
    return f"lane-probe-{uuid.uuid4().hex[:6]}"


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               detail: Callable[[], str] = lambda: "") -> None:
    """:func:`common.wait_until`, failing with a :class:`LaneError`."""
    common.wait_until(check, timeout, what, detail, error=LaneError)


class Spawner(Protocol):
    """The plane, as the lane uses it: it starts the lane's servers (``LocalControlPlane``)."""

    def spawn(self, log_path: Path, args: list[str], env: dict[str, str] | None = None) -> int:
        ...


class KnativeLane:
    """Starts the lane's processes and objects beside a running plane.

    Runs in the plane's network namespace (the caller entered it); every pid goes into the
    plane's recorded state as it starts, so ``cluster down`` stops whatever did start.
    """

    def __init__(self, plane: Spawner, state: ControlPlaneState,
                 binaries: dict[str, Path], modules: UpstreamModules, node_images: Path,
                 progress: Callable[[str], None]) -> None:
        self.plane = plane
        self.state = state
        self.binaries = binaries
        self.modules = modules
        self.progress = progress
        self.state_dir = Path(state.state_dir)
        self.logs = self.state_dir / "logs"
        self.kubectl_path = binaries["kubectl"]
        self.node_images = node_images

    # -- kubectl as the admin ------------------------------------------------------------

    def kubectl(self, *args: str, input: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.kubectl_path), "--kubeconfig", self.state.kubeconfig, *args],
            input=input, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise LaneError(f"kubectl {' '.join(args[:3])} failed: {result.stderr.strip()}")
        return result

    def apply(self, objects: list[dict[str, Any]]) -> None:
        self.kubectl("apply", "--server-side", "--force-conflicts",
                     "--field-manager=kfserving-lane", "-f", "-",
                     input=yaml.safe_dump_all(objects, sort_keys=False))

    def _get_json(self, *args: str) -> dict[str, Any] | None:
        result = self.kubectl("get", *args, "-o", "json", check=False)
        if result.returncode != 0:
            return None
        parsed: dict[str, Any] = json.loads(result.stdout)
        return parsed

    # -- start -----------------------------------------------------------------------------

    def start(self) -> None:
        started = time.monotonic()
        knative_kubeconfig = self._kubeconfig_for(KNATIVE_USER)
        scheduler_kubeconfig = self._kubeconfig_for(SCHEDULER_USER)
        kwok_kubeconfig = self._kubeconfig_for(KWOK_USER)
        self.apply([*knative_crds(self.modules), kwok_stage_crd(self.modules),
                    _virtualservice_crd()])
        # `kubectl wait` fails outright on a CRD whose status has no conditions yet (just
        # created): ask again until every CRD is Established.
        wait_until(lambda: self.kubectl("wait", "--for=condition=Established", "crd", "--all",
                                        "--timeout=30s", check=False).returncode == 0,
                   READY_TIMEOUT_SECONDS, "Knative's CRDs to be Established")
        self.apply(knative_config(self.modules))
        self.apply(kwok_stages(self.modules))
        self.progress(f"installed Knative Serving {self.modules.serving_version} objects")

        self._start("kube-scheduler", [
            f"--kubeconfig={scheduler_kubeconfig}",
            f"--authentication-kubeconfig={self.state.kubeconfig}",
            f"--authorization-kubeconfig={self.state.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--v=1",
        ])
        kwok_config = self.state_dir / "kwok.yaml"
        kwok_config.write_text(KWOK_CONFIG_FILE)
        self._start("kwok", [
            f"--kubeconfig={kwok_kubeconfig}",
            f"--config={kwok_config}",
            "--enable-crds=Stage",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.244.0.1",
            "--node-lease-duration-seconds=40",
        ])
        self.apply([fake_node()])
        node_started = time.monotonic()
        real_node.RealNode(self.state, self.binaries["kubelet"], self.node_images,
                           start=self._spawn, progress=self.progress,
                           ).start(cluster_dns=[real_node.NODE_IP])
        self._wait_for_node(real_node.NODE_NAME, taints=None)
        self.progress(f"real node {real_node.NODE_NAME} (kubelet, containerd, runc) ready in "
                      f"{time.monotonic() - node_started:.1f}s")
        access = ModelStore(self.state_dir, self.binaries["minio"], self.node_images / "models",
                            real_node.NODE_IP, start=self._spawn,
                            progress=self.progress).start()
        self.apply(credential_objects(access, "default"))

        webhook_port = free_port()
        self._start_knative("knative-webhook", knative_kubeconfig,
                            {"WEBHOOK_PORT": str(webhook_port), "WEBHOOK_NAME": "webhook"})
        self.apply(knative_webhooks(self.modules, webhook_port))
        self._start_knative("knative-controller", knative_kubeconfig)
        dns = self._start_cluster_dns()
        # Its pod IP is where the activator's stats go: the bridge's address, as for
        # every process that stands in for a pod.
        self._start_knative("knative-autoscaler", knative_kubeconfig,
                            {"POD_IP": real_node.NODE_IP}, wrapper=dns)
        self._start_data_path(knative_kubeconfig, dns)
        self.state.knative_version = self.modules.serving_version
        self.state.save()

        self._wait_for_webhooks()
        self._wait_for_node(NODE_NAME, taints=[KWOK_TAINT])
        self._prove_a_service_turns_ready()
        self.progress(f"Knative lane ready in {time.monotonic() - started:.1f}s")

    def _start_cluster_dns(self) -> list[str]:
        """kube-proxy and CoreDNS (see cluster.dataplane); returns the wrapper that runs a
        lane process with the cluster's DNS."""
        address = real_node.NODE_IP
        self.apply(dataplane.standing_objects(address))
        self._start("kube-proxy", dataplane.kube_proxy_args(
            kubeconfig=self._kubeconfig_for("system:kube-proxy"),
            node_name=real_node.NODE_NAME, pod_subnet=real_node.POD_SUBNET,
            free_port=free_port))
        corefile = self.state_dir / "Corefile"
        corefile.write_text(dataplane.corefile(self._kubeconfig_for("coredns"), address,
                                               real_node.CLUSTER_DOMAIN))
        self._start("coredns", ["-conf", str(corefile)])
        resolv = self.state_dir / "resolv.conf"
        resolv.write_text(dataplane.resolv_conf(address, real_node.CLUSTER_DOMAIN))
        return dataplane.cluster_dns_wrapper(resolv)

    def _start_data_path(self, knative_kubeconfig: Path, dns: list[str]) -> None:
        """Traefik and the activator (see cluster.dataplane)."""
        address = real_node.NODE_IP
        self.apply([*dataplane.ingress_rbac(), dataplane.ingress_class()])
        # A bound token for Traefik's ServiceAccount (48 h: longer than any lane lives).
        token = self.kubectl("create", "token", "traefik", "-n", dataplane.SYSTEM_NAMESPACE,
                             "--duration=48h").stdout.strip()
        traefik_config = self.state_dir / "traefik.yaml"
        traefik_config.write_text(yaml.safe_dump(dataplane.traefik_config(
            api_url=self.state.apiserver_url, token=token,
            ca_file=self.state_dir / "pki" / "serving-ca.crt", address=address)))
        traefik_config.chmod(0o600)  # it holds the token
        self._start("traefik", [f"--configfile={traefik_config}"])
        self._start_knative("knative-activator", knative_kubeconfig,
                            {"POD_IP": address, "POD_NAME": "activator-lane"}, wrapper=dns)
        self.state.ingress_address = f"{address}:{dataplane.PRIVATE_INGRESS_PORT}"
        self.state.save()

    def _kubeconfig_for(self, user: str) -> Path:
        # Always anew: each `cluster up` has a new CA and apiserver port.
        path = self.state_dir / f"kubeconfig-{user.replace(':', '-')}"
        issue_user_kubeconfig(self.state, user, ("system:masters",), path)
        return path

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        """Start ``argv`` in its own session, logging to ``<name>.log``, and record its pid
        under ``name`` (``cluster down`` stops it)."""
        pid = self.plane.spawn(self.logs / f"{name}.log", argv, env)
        self.state.pids[name] = pid
        self.state.save()
        return pid

    def _start(self, name: str, args: list[str], env: dict[str, str] | None = None, *,
               wrapper: list[str] | None = None) -> None:
        """Start the tool ``name``; ``wrapper`` is a command that execs it in the end (the
        pid turns into the tool's once it has)."""
        pid = self._spawn(name, [*(wrapper or []), str(self.binaries[name]), *args], env)

        # Popen may return before the child's exec shows in /proc; give it a moment.
        deadline = time.monotonic() + 5
        while not process_alive(pid, name):
            if time.monotonic() > deadline or _exited(pid):
                raise LaneError(f"{name} exited at once; log:\n{self._tail(name)}")
            time.sleep(0.05)

    def _start_knative(self, name: str, kubeconfig: Path,
                       extra_env: dict[str, str] | None = None, *,
                       wrapper: list[str] | None = None) -> None:
        env = knative_env(name, free_port(), free_port())
        env.update(extra_env or {})
        self._start(name, [f"--kubeconfig={kubeconfig}"], env, wrapper=wrapper)

    def _tail(self, name: str) -> str:
        return common.log_tail(self.logs, name)

    def _processes_alive(self) -> None:
        for name in LANE_TOOLS:
            pid = self.state.pids.get(name)
            if pid is not None and not process_alive(pid, name):
                raise LaneError(f"{name} exited; log tail:\n{self._tail(name)}")

    def _wait_for_webhooks(self) -> None:
        """Knative's webhook writes its serving certificate's CA into its configurations."""
        def injected() -> bool:
            self._processes_alive()
            for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
                items = (self._get_json(kind) or {}).get("items", [])
                for item in items:
                    if "knative" not in item["metadata"]["name"]:
                        continue
                    if not all(hook["clientConfig"].get("caBundle")
                               for hook in item.get("webhooks", [])):
                        return False
            return True

        wait_until(injected, READY_TIMEOUT_SECONDS, "Knative's webhook certificates",
                   lambda: self._tail("knative-webhook"))

    def _wait_for_node(self, name: str, taints: list[dict[str, str]] | None) -> None:
        """The node reports Ready, and the node-lifecycle controller has lifted the taints it
        was registered with: ``taints`` (None: none) are all it keeps."""
        def schedulable() -> bool:
            self._processes_alive()
            node = self._get_json("node", name) or {}
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in node.get("status", {}).get("conditions", []))
            return ready and node.get("spec", {}).get("taints") == taints

        wait_until(schedulable, READY_TIMEOUT_SECONDS, f"node {name} to be Ready",
                   lambda: json.dumps(self._get_json("node", name), indent=1))

    def _prove_a_service_turns_ready(self) -> None:
        """Apply a Knative Service, wait for Ready, delete it: the lane works end to end."""
        name = probe_name()
        self.apply([probe_service(name)])

        def ready() -> bool:
            self._processes_alive()
            ksvc = self._get_json("ksvc", name, "-n", "default") or {}
            return any(c.get("type") == "Ready" and c.get("status") == "True"
                       for c in ksvc.get("status", {}).get("conditions", []))

        try:
            wait_until(ready, READY_TIMEOUT_SECONDS, f"probe Knative Service {name} to be Ready",
                       lambda: self.kubectl("get", "ksvc,configuration,revision,route,pods",
                                            "-n", "default", "-o", "wide",
                                            check=False).stdout)
        finally:
            self.kubectl("delete", "ksvc", name, "-n", "default", "--wait=false",
                         "--ignore-not-found", check=False)


def _exited(pid: int) -> bool:
    """True when our child ``pid`` has exited (and reap it)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not Path(f"/proc/{pid}").exists()
    return done == pid


def _virtualservice_crd() -> dict[str, Any]:
    """The project's permissive VirtualService stand-in (Istio does not run on the lane)."""
    path = project_root() / "hack" / "dev-crds" / "istio-virtualservice.yaml"
    crd: dict[str, Any] = yaml.safe_load(path.read_text())
    return crd
