"""The lane's real node: kubelet, containerd and runc, with CNI bridge networking.

Everything runs inside the lane's isolated network namespace
(:mod:`kfserving_operator.cluster.netns`). The pods' network is a bridge that exists only
there (``kfs0``, :data:`POD_SUBNET`): pods reach each other and the lane's own processes
on the bridge's address, and nothing else, because the namespace has no other interface
and no default route.

- **containerd** (Debian's package) with runc and the overlayfs snapshotter, its root kept
  in the state directory so the imported images survive ``cluster down``; its CRI plugin
  uses the CNI plugins of Debian's ``containernetworking-plugins`` (bridge, host-local,
  loopback) and our pause image.
- **kubelet** v1.35.4, built from the Kubernetes modules like the rest of the plane, with
  the cgroupfs driver on this machine's cgroup v1 hierarchies (``failCgroupV1: false``), in
  a cgroup root of its own (``/kfserving-<id>``), so another checkout's kubelet never sees
  these pods as orphans.
- **images**: built here by ``hack/build-node-images.sh`` (never pulled) and imported from
  their OCI archives once per containerd root; the kubelet's image garbage collection is
  off, because nothing it removed could be pulled again.

The node authenticates as ``system:node:<name>`` with a client certificate from the
plane's CA, so the audit log attributes its writes (node status, pod status) to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kfserving_operator.cluster.common import (
    SERVICE_CIDR,
    free_port,
    issue_user_kubeconfig,
    log_tail,
    wait_until,
)

if TYPE_CHECKING:
    from kfserving_operator.cluster.common import ControlPlaneState


NODE_NAME = "lane-node-0"
BRIDGE = "kfs0"
POD_SUBNET = "10.90.0.0/24"
# The bridge's address: the node's InternalIP and the lane processes' address for pods.
NODE_IP = "10.90.0.1"
CLUSTER_DOMAIN = "cluster.local"
PAUSE_IMAGE = "kind.local/kfserving-lane/pause:3.10"
CNI_BIN_DIR = Path("/usr/lib/cni")
CGROUP_V1_ROOT = Path("/sys/fs/cgroup")
READY_TIMEOUT_SECONDS = 120.0


class NodeError(RuntimeError):
    """The real node could not be started."""


def missing_runtime() -> list[str]:
    """The Debian packages the node needs that this machine lacks (the same list as
    ``ensure_node_runtime`` in hack/build-tools.sh, which installs them)."""
    missing = []
    for package, probe in (("containerd", "containerd"), ("runc", "runc"),
                           ("iproute2", "ip"), ("iptables", "iptables")):
        if shutil.which(probe) is None:
            missing.append(package)
    if not (CNI_BIN_DIR / "bridge").exists():
        missing.append("containernetworking-plugins")
    return missing


def cni_config(state_dir: Path) -> dict[str, Any]:
    """The pod network: one bridge, host-local addresses, loopback in each pod."""
    return {
        "cniVersion": "0.4.0",
        "name": "kfserving-lane",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                # No masquerading: there is nowhere to masquerade to.
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP}]],
                    # Allocations per checkout, not in the machine-wide /var/lib/cni.
                    "dataDir": str(state_dir / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def containerd_config(root: Path, state: Path, socket: Path, cni_conf_dir: Path) -> str:
    """containerd 1.6's configuration (version 2 format) for the node."""
    return f"""version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # This machine refuses to lower a process's oom_score_adj (even for root), and kubelet
  # asks for -998 for the sandbox: keep containers at containerd's own value or above.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni_conf_dir}"
"""


def kubelet_config(*, cgroup_root: str, socket: Path, port: int, healthz_port: int,
                   client_ca: Path, resolv_conf: Path, pod_logs: Path,
                   cluster_dns: list[str]) -> dict[str, Any]:
    """The KubeletConfiguration: cgroupfs on cgroup v1, no image GC, no eviction games."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # This machine has cgroup v1 only; kubelet 1.35 refuses it unless told otherwise.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "containerRuntimeEndpoint": f"unix://{socket}",
        "address": NODE_IP,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": cluster_dns,
        "resolvConf": str(resolv_conf),
        "podLogsDir": str(pod_logs),
        "failSwapOn": False,
        "registerNode": True,
        "serializeImagePulls": False,
        # Images are imported, never pulled: collecting one would lose it for good.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                         "imagefs.available": "1%"},
        "nodeStatusReportFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "20s",
        "maxPods": 110,
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": False,
        "localStorageCapacityIsolation": True,
        # Pods' logs stay small: the e2e tier reads them, nothing archives them.
        "containerLogMaxSize": "10Mi",
        "containerLogMaxFiles": 2,
        "shutdownGracePeriod": "0s",
    }


def cgroup_root_name(state_dir: Path) -> str:
    """A cgroup root per checkout: kubelet removes pod cgroups it does not know."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:8]
    return f"/kfserving-{digest}"


def _v1_hierarchies() -> list[Path]:
    if not CGROUP_V1_ROOT.is_dir():
        return []
    return [path for path in sorted(CGROUP_V1_ROOT.iterdir())
            if path.is_dir() and (path / "cgroup.procs").exists()]


def ensure_cgroup_root(name: str) -> None:
    """Create ``name`` in every cgroup v1 hierarchy (kubelet requires it to exist).

    A new cpuset cgroup starts with no CPUs and no memory nodes; it gets its parent's.
    """
    for hierarchy in _v1_hierarchies():
        path = hierarchy / name.lstrip("/")
        path.mkdir(exist_ok=True)
        for knob in ("cpuset.cpus", "cpuset.mems"):
            if (path / knob).exists() and not (path / knob).read_text().strip():
                (path / knob).write_text((hierarchy / knob).read_text())


def remove_cgroup_root(name: str) -> None:
    """Remove the node's cgroup tree, deepest first; busy ones stay (nothing to force)."""
    for hierarchy in _v1_hierarchies():
        top = hierarchy / name.lstrip("/")
        if not top.is_dir():
            continue
        for path in sorted((p for p in top.rglob("*") if p.is_dir()),
                           key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def mounts_under(prefixes: list[Path]) -> list[str]:
    """Mount points below any of ``prefixes``, deepest first (the order to unmount)."""
    points = []
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            point = line.split()[1].replace("\\040", " ")
            if any(point == str(p) or point.startswith(f"{p}/") for p in prefixes):
                points.append(point)
    return sorted(points, key=lambda p: p.count("/"), reverse=True)


def image_archives(images_dir: Path) -> list[tuple[str, Path]]:
    """(image reference, OCI archive) pairs the node image build listed."""
    listing = images_dir / "images.txt"
    if not listing.exists():
        raise NodeError(f"no node images in {images_dir}: run hack/build-node-images.sh "
                        "(make tools does)")
    pairs = []
    for line in listing.read_text().splitlines():
        if line.strip():
            reference, archive = line.split()
            pairs.append((reference, images_dir / "archives" / archive))
    return pairs


def archive_digest(archive: Path) -> str:
    """The manifest digest an OCI archive's index names (its first image)."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        if member is None:
            raise NodeError(f"{archive} is not an OCI archive (no index.json)")
        index = json.load(member)
    digest: str = index["manifests"][0]["digest"]
    return digest


class RealNode:
    """Starts containerd and kubelet in the lane's namespace; the kubelet registers the Node
    (the lane waits for it to be Ready).

    ``start(name, argv, env)`` is the lane's: it starts a process in its own session and
    records its pid under ``name``, so ``cluster down`` stops it.
    """

    def __init__(self, state: ControlPlaneState, kubelet: Path, images_dir: Path, *,
                 start: Callable[[str, list[str], dict[str, str] | None], int],
                 progress: Callable[[str], None]) -> None:
        self.state = state
        self.kubelet = kubelet
        self.images_dir = images_dir
        self.spawn = start
        self.progress = progress
        self.state_dir = Path(state.state_dir)
        self.node_dir = self.state_dir / "node"
        self.logs = self.state_dir / "logs"
        self.socket = self.node_dir / "containerd.sock"

    # -- start -----------------------------------------------------------------------------

    def start(self, cluster_dns: list[str]) -> None:
        missing = missing_runtime()
        if missing:
            raise NodeError(f"the real node needs Debian's {' '.join(missing)} "
                            "(apt-get install them; .ci/run and make tools do)")
        archives = image_archives(self.images_dir)
        self.node_dir.mkdir(parents=True, exist_ok=True)
        self._bridge_up()
        cni_dir = self.node_dir / "cni" / "net.d"
        cni_dir.mkdir(parents=True, exist_ok=True)
        (cni_dir / "10-kfserving-lane.conflist").write_text(
            json.dumps(cni_config(self.node_dir), indent=1))
        config = self.node_dir / "containerd.toml"
        config.write_text(containerd_config(self.node_dir / "containerd",
                                            self.node_dir / "containerd-state",
                                            self.socket, cni_dir))
        self.socket.unlink(missing_ok=True)
        self.spawn("containerd", [shutil.which("containerd") or "containerd",
                                  "--config", str(config)], None)
        wait_until(lambda: self._ctr("version", check=False).returncode == 0,
                   READY_TIMEOUT_SECONDS, "containerd",
                   lambda: log_tail(self.logs, "containerd"), error=NodeError)
        self._import_images(archives)
        self._start_kubelet(cluster_dns)

    def _bridge_up(self) -> None:
        """The pod bridge with the node's address, before the first pod needs it.

        The CNI bridge plugin would make it on first use; making it now gives the kubelet
        its InternalIP (the address the API server reaches it on) from the start.
        """
        def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)

        if ip("link", "show", BRIDGE, check=False).returncode != 0:
            ip("link", "add", BRIDGE, "type", "bridge")
        prefix = POD_SUBNET.split("/")[1]
        if NODE_IP not in ip("-4", "addr", "show", BRIDGE).stdout:
            ip("addr", "add", f"{NODE_IP}/{prefix}", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        # Without a route, a lane process's connection to a cluster IP fails before
        # kube-proxy's rules can rewrite its destination (the namespace has no default route).
        ip("route", "replace", SERVICE_CIDR, "dev", BRIDGE)

    def _ctr(self, *args: str, check: bool = True,
             timeout: float = 600) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["ctr", "--address", str(self.socket), "--namespace", "k8s.io",
                                 *args], capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise NodeError(f"ctr {' '.join(args[:3])} failed: {result.stderr.strip()}")
        return result

    def _import_images(self, archives: list[tuple[str, Path]]) -> None:
        # REF TYPE DIGEST ...: an image is current when its tag points at the archive's
        # manifest (a rebuilt image keeps its tag).
        present = {}
        for line in self._ctr("images", "list").stdout.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3:
                present[fields[0]] = fields[2]
        for reference, archive in archives:
            if present.get(reference) == archive_digest(archive):
                continue
            self.progress(f"importing {reference} into the node's containerd")
            self._ctr("images", "import", str(archive))
        # The runtime keeps the sandbox image; label it so kubelet reports it pinned.
        self._ctr("images", "label", PAUSE_IMAGE, "io.cri-containerd.pinned=pinned",
                  check=False)

    def _start_kubelet(self, cluster_dns: list[str]) -> None:
        cgroup_root = cgroup_root_name(self.state_dir)
        ensure_cgroup_root(cgroup_root)
        kubeconfig = self.node_dir / "kubeconfig"
        issue_user_kubeconfig(self.state, f"system:node:{NODE_NAME}",
                              ("system:nodes", "system:masters"), kubeconfig)
        resolv_conf = self.node_dir / "resolv.conf"
        # Pods that do not use the cluster's DNS get no name server at all: there is no
        # network to resolve names on.
        resolv_conf.write_text("# the lane has no network beyond its own namespace\n")
        config = kubelet_config(
            cgroup_root=cgroup_root, socket=self.socket, port=free_port(),
            healthz_port=free_port(), client_ca=self.state_dir / "pki" / "client-ca.crt",
            resolv_conf=resolv_conf, pod_logs=self.node_dir / "pod-logs",
            cluster_dns=cluster_dns)
        config_path = self.node_dir / "kubelet.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.spawn("kubelet", [
            str(self.kubelet),
            f"--config={config_path}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={self.node_dir / 'kubelet'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            "--node-labels=type=real",
            "--v=1",
        ], None)
        self.state.node_cgroup_root = cgroup_root
        self.state.save()


def stop_workloads(state_dir: Path) -> None:
    """After kubelet has stopped and before containerd does: kill every pod's processes,
    unmount what kubelet and containerd mounted, and remove the node's cgroups.

    containerd's shims outlive containerd by design; without this, ``cluster down`` would
    leave the model servers running.
    """
    node_dir = state_dir / "node"
    socket = node_dir / "containerd.sock"
    if socket.exists():
        ctr = ["ctr", "--address", str(socket), "--namespace", "k8s.io"]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            tasks = subprocess.run([*ctr, "tasks", "list", "--quiet"], capture_output=True,
                                   text=True, timeout=30).stdout.split()
            for task in tasks:
                subprocess.run([*ctr, "tasks", "kill", "--all", "--signal", "SIGKILL", task],
                               capture_output=True, timeout=30)
            for task in tasks:
                subprocess.run([*ctr, "tasks", "delete", "--force", task],
                               capture_output=True, timeout=30)
            containers = subprocess.run([*ctr, "containers", "list", "--quiet"],
                                        capture_output=True, text=True,
                                        timeout=30).stdout.split()
            if containers:
                subprocess.run([*ctr, "containers", "delete", *containers],
                               capture_output=True, timeout=60)


def unmount_node(state_dir: Path, cgroup_root: str | None) -> None:
    """Unmount everything below the node's directories (after containerd has stopped)."""
    node_dir = state_dir / "node"
    for point in mounts_under([node_dir]):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
    if cgroup_root:
        remove_cgroup_root(cgroup_root)
