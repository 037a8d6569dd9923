"""Listening on a host and port, for the operator's two HTTP servers (probes and webhooks).

A neutral module below both the webhook server and the operator shell: it knows aiohttp's
runners and sites, nothing of either server.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


class BindError(Exception):
    """A server could not listen on its address."""


async def listen(runner: web.AppRunner, host: str, port: int, what: str,
                 site: type[web.TCPSite] = web.TCPSite, **site_options: Any) -> int:
    """Start ``runner`` on host:port (0 = any free port) through a ``site`` of that type;
    return the port it got. On failure the runner is cleaned up and :class:`BindError`
    names ``what`` could not listen where."""
    try:
        await site(runner, host, port, **site_options).start()
    except OSError as exc:
        await runner.cleanup()
        raise BindError(f"cannot listen for {what} on {host}:{port}: "
                        f"{exc.strerror or exc}") from exc
    return bound_port(runner, port)


def bound_port(runner: web.AppRunner, requested: int) -> int:
    """The port a started runner listens on (the free one the OS chose for port 0)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested
