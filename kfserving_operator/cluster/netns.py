"""A network namespace with only loopback, kept alive by a holder process.

Real Knative dials pod and Service IPs (10.x): its autoscaler scrapes every pod's metrics
port each second. On our machines no packet may leave loopback, so the Knative lane (and the
control plane with it) runs in a network namespace of its own that has nothing but ``lo``
and no route: a connect to any other address fails at once with ENETUNREACH.

The namespace must outlive ``cluster up`` so that later commands (``cluster exec``, the
operator, tests) can join it. A small holder process (``python -m
kfserving_operator.cluster.netns hold STATE_DIR``, started under ``unshare --net``) owns it:
it brings ``lo`` up and then sleeps until ``cluster down`` stops it by its recorded pid.
Others join through ``/proc/<holder>/ns/net``: this Python process with ``setns(2)``
(:func:`enter`), subprocesses with ``nsenter`` (:func:`join_prefix`).

As root (CI, our machines) ``unshare --net`` is enough. Elsewhere an unprivileged user
namespace is tried (``unshare --user --map-root-user --net``); joining then enters both.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_HOLDER_MODULE = "kfserving_operator.cluster.netns"


class NetnsError(RuntimeError):
    """The isolated network namespace could not be made, found or entered."""


def _rootless() -> bool:
    return os.geteuid() != 0


def unavailable_reason() -> str | None:
    """Why no isolated namespace can be made here, or None when one can."""
    unshare = shutil.which("unshare")
    if unshare is None or shutil.which("nsenter") is None:
        return "unshare/nsenter (util-linux) are not installed"
    command = [unshare, "--net", "true"]
    if _rootless():
        command = [unshare, "--user", "--map-root-user", "--net", "true"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run unshare: {exc}"
    if result.returncode != 0:
        how = "as root" if not _rootless() else "with an unprivileged user namespace"
        return f"cannot create a network namespace {how}: {result.stderr.strip()}"
    return None


def start_holder(state_dir: Path, timeout: float = 10.0) -> int:
    """Start the holder of a new namespace; return its pid once ``lo`` is up inside."""
    unavailable = unavailable_reason()
    if unavailable:
        raise NetnsError(unavailable)
    ready = state_dir / "netns.ready"
    ready.unlink(missing_ok=True)
    isolation = ["--net"] if not _rootless() else ["--user", "--map-root-user", "--net"]
    # `unshare` execs the holder in place, so the pid we get is the holder's own.
    process = subprocess.Popen(
        ["unshare", *isolation, "--", sys.executable, "-m", _HOLDER_MODULE, "hold",
         str(state_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(state_dir / "netns.log").open("ab"),
        start_new_session=True,  # survives the command that started it
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists():
            return process.pid
        if process.poll() is not None:
            log = (state_dir / "netns.log").read_text(errors="replace")[-2000:]
            raise NetnsError(f"the network namespace holder exited:\n{log}")
        time.sleep(0.05)
    stop_holder(process.pid, state_dir)
    raise NetnsError("the network namespace holder did not report ready")


def holder_alive(pid: int, state_dir: Path) -> bool:
    """True when ``pid`` is the holder for ``state_dir`` (guards against reused pids)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    if "State:\tZ" in status:
        return False
    decoded = [arg.decode(errors="replace") for arg in args]
    return _HOLDER_MODULE in decoded and str(state_dir) in decoded


def stop_holder(pid: int, state_dir: Path) -> bool:
    """Stop the holder; the namespace goes away with the last process in it."""
    if not holder_alive(pid, state_dir):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while holder_alive(pid, state_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return True


def join_prefix(pid: int) -> list[str]:
    """The argv prefix that runs a command inside the holder's namespace."""
    if _rootless():
        return ["nsenter", f"--target={pid}", "--user", "--net", "--preserve-credentials", "--"]
    return ["nsenter", f"--net=/proc/{pid}/ns/net", "--"]


def enter(pid: int) -> None:
    """Move this process (its calling thread; call before starting threads) into the namespace.

    Everything it starts afterwards inherits the namespace, and its own sockets live there.
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    kinds = [("net", CLONE_NEWNET)]
    if _rootless():
        kinds.insert(0, ("user", CLONE_NEWUSER))
    for kind, flag in kinds:
        fd = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY)
        try:
            if libc.setns(fd, flag) != 0:
                errno = ctypes.get_errno()
                raise NetnsError(f"setns({kind}) into pid {pid} failed: {os.strerror(errno)}")
        finally:
            os.close(fd)


def same_namespace(pid: int) -> bool:
    """True when this process already is in ``pid``'s network namespace."""
    try:
        return os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/thread-self/ns/net")
    except OSError:
        return False


def interfaces() -> list[str]:
    """Network interfaces of the current namespace."""
    lines = Path("/proc/thread-self/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":", 1)[0].strip() for line in lines if ":" in line)


def default_route() -> str | None:
    """A description of the default route of the current namespace, or None if it has none."""
    ipv6 = Path("/proc/thread-self/net/ipv6_route")
    return parse_default_route(Path("/proc/thread-self/net/route").read_text(),
                               ipv6.read_text() if ipv6.exists() else "")


def parse_default_route(ipv4_table: str, ipv6_table: str) -> str | None:
    """The default route in ``/proc/net/route`` and ``/proc/net/ipv6_route`` text, if any."""
    for line in ipv4_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 7 and fields[1] == "00000000" and fields[7] == "00000000":
            return f"IPv4 default route via {fields[0]}"
    for line in ipv6_table.splitlines():
        fields = line.split()
        if len(fields) > 9 and fields[0] == "0" * 32 and fields[1] == "00" \
                and fields[9] != "lo":
            return f"IPv6 default route via {fields[9]}"
    return None


def check_isolated() -> None:
    """Refuse to go on unless this namespace has only ``lo`` and no default route."""
    route = default_route()
    if route:
        raise NetnsError(f"refusing to start Knative: this network namespace has a {route}; "
                         "Knative dials pod and Service IPs, which must never leave loopback")
    others = [name for name in interfaces() if name != "lo"]
    if others:
        raise NetnsError("refusing to start Knative: this network namespace has interfaces "
                         f"besides lo: {', '.join(others)}")


def _bring_loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _hold(state_dir: Path) -> int:
    """The holder's body: lo up, report ready, sleep until told to stop."""
    _bring_loopback_up()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    (state_dir / "netns.ready").write_text(str(os.getpid()))
    while True:
        signal.pause()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "hold":
        sys.exit(_hold(Path(sys.argv[2])))
    print(f"usage: python -m {_HOLDER_MODULE} hold STATE_DIR", file=sys.stderr)
    sys.exit(2)
