"""The agent sidecar in a pod without Knative's queue-proxy: a raw Deployment's. Pure.

In Serverless mode the agent copies queue-proxy's environment, which tells it how to probe
the model server, and queue-proxy forwards requests to it. A raw Deployment's pod has no
queue-proxy: its Service sends requests straight to the agent's port (9081), and the agent
(KServe's, ``cmd/agent``) refuses to start without ``SERVING_READINESS_PROBE``. So it gets:

* ``--component-port``: the model server's port it forwards to, the first container's first
  declared port, else 8080 (never the agent's own port, which would loop);
* ``SERVING_READINESS_PROBE``: the first container's readiness probe as Knative's
  queue-proxy would get it (an HTTP GET or TCP probe aimed at 127.0.0.1 and that port), or
  empty when that probe is missing or runs a command (the agent then reports itself ready,
  and the model container's own probe still gates the pod);
* its port, declared as ``agent-port``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, Final

from kfserving_operator.api.constants import AGENT_PORT, DEFAULT_HTTP_PORT

READINESS_PROBE_ENV: Final = "SERVING_READINESS_PROBE"
COMPONENT_PORT_FLAG: Final = "--component-port"
AGENT_PORT_NAME: Final = "agent-port"
LOCAL_ADDRESS: Final = "127.0.0.1"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _ports(container: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    ports = container.get("ports")
    return [_mapping(p) for p in ports] if isinstance(ports, list) else []


def model_port(model: Mapping[str, Any]) -> int:
    """The port the model server listens on: its first declared port, else 8080."""
    for port in _ports(model):
        number = port.get("containerPort")
        if isinstance(number, int) and not isinstance(number, bool) and number != AGENT_PORT:
            return number
    return DEFAULT_HTTP_PORT


def _probe_port(model: Mapping[str, Any], port: Any) -> int:
    """A probe's port as a number: a named port is looked up among the container's."""
    if isinstance(port, int) and not isinstance(port, bool):
        return port
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        for declared in _ports(model):
            number = declared.get("containerPort")
            if declared.get("name") == port and isinstance(number, int):
                return number
    return model_port(model)


def readiness_probe(model: Mapping[str, Any]) -> str:
    """The model container's readiness probe for the agent to run, as JSON; "" for none."""
    probe = copy.deepcopy(dict(_mapping(model.get("readinessProbe"))))
    for handler in ("httpGet", "tcpSocket"):
        action = probe.get(handler)
        if isinstance(action, Mapping):
            action = dict(action)
            action["host"] = LOCAL_ADDRESS
            action["port"] = _probe_port(model, action.get("port"))
            if handler == "httpGet":
                action.setdefault("scheme", "HTTP")
            probe = {k: v for k, v in probe.items() if k not in ("exec", "grpc")}
            probe[handler] = action
            return json.dumps(probe, sort_keys=True, separators=(",", ":"))
    return ""


def raw_agent_fields(model: Mapping[str, Any]) -> tuple[list[str], list[dict[str, Any]],
                                                        list[dict[str, Any]]]:
    """Extra args, env and ports of an agent fronting ``model`` without queue-proxy."""
    args = [COMPONENT_PORT_FLAG, str(model_port(model))]
    env = [{"name": READINESS_PROBE_ENV, "value": readiness_probe(model)}]
    ports = [{"name": AGENT_PORT_NAME, "containerPort": AGENT_PORT, "protocol": "TCP"}]
    return args, env, ports
