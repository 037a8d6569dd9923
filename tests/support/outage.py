"""Outages on the local control plane: stop kube-apiserver (or etcd), start it again as it was."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kfserving_operator.cluster.localplane import LocalControlPlane
from tests.support.cluster import Cluster, wait_for

APISERVER = "kube-apiserver"


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


@contextmanager
def apiserver_down(cluster: Cluster) -> Iterator[None]:
    """Kill kube-apiserver for the duration of the block; start it again with the same
    command line (same port, same etcd) and wait until it is ready."""
    with process_down(cluster, APISERVER):
        yield


@contextmanager
def process_down(cluster: Cluster, name: str) -> Iterator[None]:
    """Kill one process of the plane (``kube-apiserver``, ``etcd``) for the duration of the
    block; start it again with the same command line (same ports, same data) and wait until
    the whole plane is ready again."""
    state = cluster.local_state
    if state is None:
        raise RuntimeError("needs the local control plane")
    pid = state.pids[name]
    command = [part.decode() for part in
               Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if part]
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: not _alive(pid), timeout=15, message=f"{name} to stop")
    try:
        yield
    finally:
        plane = LocalControlPlane(Path(state.state_dir))
        # As the plane started it: its own session, its log, no proxy in the environment.
        state.pids[name] = plane.spawn(Path(state.state_dir) / "logs" / f"{name}.log", command)
        state.save()

        def ready() -> bool:
            try:
                return plane.is_healthy()
            except OSError:
                return False

        wait_for(ready, timeout=120, interval=0.2, message=f"{name} to be ready again")
        time.sleep(0.2)
