"""The lane's network namespace, on the real kernel: only loopback, nothing routed out, and a
namespace with a default route is refused. No cluster, and no packet leaves loopback: the
default route in the refusal test goes to the loopback device of a namespace of its own."""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kfserving_operator.cluster import netns

pytestmark = pytest.mark.skipif(netns.unavailable_reason() is not None,
                                reason=f"no network namespace here: {netns.unavailable_reason()}")


def _inside(pid: int, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*netns.join_prefix(pid), sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=30)


def test_the_holder_keeps_a_namespace_with_only_loopback(tmp_path: Path) -> None:
    pid = netns.start_holder(tmp_path)
    try:
        result = _inside(pid, "\n".join([
            "import socket",
            "from kfserving_operator.cluster import netns",
            "netns.check_isolated()",
            "print(netns.interfaces())",
            "server = socket.create_server(('127.0.0.1', 0))",
            "socket.create_connection(server.getsockname(), timeout=2).close()",
            "try:",
            "    socket.create_connection(('10.244.0.1', 9090), timeout=2)",
            "except OSError as exc:",
            "    print('pod IP:', exc.errno)",
        ]))
        assert result.returncode == 0, result.stderr
        assert result.stdout.split("\n")[:2] == ["['lo']", f"pod IP: {errno.ENETUNREACH}"]
    finally:
        assert netns.stop_holder(pid, tmp_path)
    assert not netns.holder_alive(pid, tmp_path)


@pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2 to add a route")
def test_a_namespace_with_a_default_route_is_refused() -> None:
    # Any default route is refused, even one into lo (the only device a fresh namespace has).
    script = ("ip link set lo up && ip route add default dev lo || exit 77\n"
              f"exec {sys.executable} -c "
              "'from kfserving_operator.cluster import netns; netns.check_isolated()'")
    result = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True,
                            text=True, timeout=30)
    if result.returncode == 77:
        pytest.skip(f"cannot add a route here: {result.stderr.strip()}")
    assert result.returncode != 0
    assert "refusing to start Knative" in result.stderr
    assert "IPv4 default route via lo" in result.stderr
