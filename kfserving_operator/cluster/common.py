"""What the local control plane and the Knative lane share: the plane's recorded state,
free loopback ports, process checks and user kubeconfigs.

Both :mod:`~kfserving_operator.cluster.localplane` (which starts the lane) and
:mod:`~kfserving_operator.cluster.lane` import this module, and neither imports the other's
caller: the package has no import circle.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from kfserving_operator.pki import KeyPair, issue_client_cert

# The API server's Service cluster IP range. On the lane, kube-proxy turns these addresses
# into pods' (and the lane processes') addresses, and the node routes the range to its pod
# bridge so that connections to a cluster IP from the lane's own processes get that far.
SERVICE_CIDR = "10.0.0.0/24"


def project_root() -> Path:
    """The checkout this package lives in (the package is installed editable)."""
    return Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ControlPlaneState:
    """What a running control plane is made of; persisted as ``state.json``."""

    state_dir: str
    kubeconfig: str
    apiserver_url: str
    etcd_url: str
    etcd_data_dir: str
    pids: dict[str, int]
    # The holder of the isolated network namespace (None: the host's loopback).
    netns_pid: int | None = None
    # The Knative Serving module version when the Knative lane runs.
    knative_version: str | None = None
    # The real node's cgroup root (``/kfserving-<id>``) when the lane runs one.
    node_cgroup_root: str | None = None
    # host:port of the lane's ingress (Traefik's cluster-local entry point).
    ingress_address: str | None = None

    def save(self) -> None:
        Path(self.state_dir, "state.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, state_dir: Path) -> ControlPlaneState | None:
        path = state_dir / "state.json"
        if not path.exists():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            return None


def process_alive(pid: int, expected_name: str) -> bool:
    """True when ``pid`` runs ``expected_name`` (guards against reused pids)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    if "State:\tZ" in status:
        return False
    return Path(cmdline.decode(errors="replace")).name == expected_name


def issue_user_kubeconfig(state: ControlPlaneState, user: str, groups: tuple[str, ...],
                          path: Path) -> Path:
    """A kubeconfig for another user, signed by the local client CA (for RBAC tests)."""
    pki = Path(state.state_dir) / "pki"
    client_ca = KeyPair((pki / "client-ca.crt").read_bytes(), (pki / "client-ca.key").read_bytes())
    pair = issue_client_cert(client_ca, user, groups)
    config = yaml.safe_load(Path(state.kubeconfig).read_text())
    config["users"] = [{
        "name": user,
        "user": {
            "client-certificate-data": base64.b64encode(pair.cert_pem).decode(),
            "client-key-data": base64.b64encode(pair.key_pem).decode(),
        },
    }]
    config["contexts"][0]["context"]["user"] = user
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)  # it holds a client private key
    return path


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               detail: Callable[[], str] = lambda: "",
               error: type[Exception] = RuntimeError) -> None:
    """Poll ``check`` until it is true; on timeout raise ``error`` with ``detail()`` for the
    user. A check that fails to run (a process or command not answering yet) counts as
    false; any other exception it raises ends the wait."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            if check():
                return
        time.sleep(0.2)
    raise error(f"timed out after {timeout:.0f}s waiting for {what}\n{detail()}")


def log_tail(logs: Path, name: str, chars: int = 3000) -> str:
    """The end of ``<logs>/<name>.log`` (empty when there is none)."""
    log = logs / f"{name}.log"
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""
