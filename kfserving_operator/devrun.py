"""``make run``: a cluster, the CRDs, the default config, and the operator in the foreground.

If ``KUBECONFIG`` names a reachable cluster it is used as it is; otherwise the local loopback
control plane is started (or reused). Knative's and Istio's CRDs are installed as permissive
stand-ins only when the cluster does not serve them already, so a real kind cluster with
Knative and Istio is never modified beyond our own CRD and ConfigMap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from kfserving_operator.api.config import CONFIGMAP_NAME, DEFAULT_NAMESPACE, OperatorConfig
from kfserving_operator.cluster.localplane import LocalControlPlane, find_tool, project_root
from kfserving_operator.webhooks.legacy_registration import (
    ISVC_CRD_NAME,
    shipped_conversion_patch,
)


def _kubectl(kubeconfig: str, *args: str, input: str | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(find_tool("kubectl")), "--kubeconfig", kubeconfig, *args],
                          input=input, capture_output=True, text=True, check=check)


def _reachable(kubeconfig: str) -> bool:
    if not Path(kubeconfig).exists():
        return False
    try:
        result = _kubectl(kubeconfig, "get", "--raw", "/readyz", "--request-timeout=5s",
                          check=False)
    except OSError:
        return False
    return result.returncode == 0 and result.stdout.strip() == "ok"


def choose_cluster() -> str:
    """The kubeconfig to use, starting the local control plane when nothing is reachable."""
    given = os.environ.get("KUBECONFIG")
    if given and _reachable(given):
        print(f"using the cluster in KUBECONFIG={given}")
        return given
    state = LocalControlPlane().up()
    print(f"local control plane at {state.apiserver_url}")
    print(f"KUBECONFIG={state.kubeconfig}")
    return state.kubeconfig


def install(kubeconfig: str, namespace: str) -> None:
    root = project_root()
    # A CRD a local operator left pointing at its loopback conversion webhook (it was
    # killed) cannot be re-applied as is: point it back at the shipped Service first.
    _kubectl(kubeconfig, "patch", "crd", ISVC_CRD_NAME, "--type=merge", "-p",
             json.dumps(shipped_conversion_patch()), check=False)
    for crd in sorted((root / "crds").glob("*.yaml")):
        _kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(crd))
    for stand_in in sorted((root / "hack" / "dev-crds").glob("*.yaml")):
        name = yaml.safe_load(stand_in.read_text())["metadata"]["name"]
        if _kubectl(kubeconfig, "get", "crd", name, check=False).returncode != 0:
            print(f"{name} is not installed; installing the development stand-in")
            _kubectl(kubeconfig, "apply", "-f", str(stand_in))
    _kubectl(kubeconfig, "wait", "--for=condition=Established", "crd", "--all",
             "--timeout=60s")
    if _kubectl(kubeconfig, "get", "namespace", namespace, check=False).returncode != 0:
        _kubectl(kubeconfig, "create", "namespace", namespace)
    existing = _kubectl(kubeconfig, "get", "configmap", CONFIGMAP_NAME, "-n", namespace,
                        check=False)
    if existing.returncode != 0:
        configmap = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP_NAME, "namespace": namespace},
            "data": OperatorConfig().to_configmap_data(),
        }
        _kubectl(kubeconfig, "apply", "-f", "-", input=yaml.safe_dump(configmap))
        print(f"created {namespace}/{CONFIGMAP_NAME} with the default config")


def main() -> int:
    namespace = os.environ.get("POD_NAMESPACE", DEFAULT_NAMESPACE)
    kubeconfig = choose_cluster()
    install(kubeconfig, namespace)
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    print("starting the operator (Ctrl-C to stop); try: "
          f"KUBECONFIG={kubeconfig} kubectl apply -f examples/sklearn.yaml")
    command = [sys.executable, "-m", "kfserving_operator", "run", "--namespace", namespace,
               "--webhooks", "local"]
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
