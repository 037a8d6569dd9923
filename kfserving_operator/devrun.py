"""``make run``: a cluster, the CRDs, the default config, and the operator in the foreground.

By default it uses the project's own local cluster and nothing else: the loopback control
plane with real Knative Serving (the "lane"), isolated in a network namespace that has only
loopback. Where the lane cannot run (no network namespace can be made, or its build fails)
it says why and falls back to the plane with the permissive Knative stand-in CRD, where
Knative Services are never made Ready.

``KUBECONFIG`` is ignored unless the user names another cluster explicitly with
``CLUSTER=external`` (``make run CLUSTER=external KUBECONFIG=...``); then it says what it will
install there before doing so, installs the Knative/Istio stand-ins only where those CRDs
are missing, and refuses a kubeconfig that asks for impersonation (``as:``), which the
operator's client would not honour.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from kfserving_operator.api.config import CONFIGMAP_NAME, OperatorConfig
from kfserving_operator.api.constants import OPERATOR_NAMESPACE as DEFAULT_NAMESPACE
from kfserving_operator.cluster import netns
from kfserving_operator.cluster.localconfig import local_operator_config
from kfserving_operator.cluster.localplane import (
    ControlPlaneError,
    LocalControlPlane,
    find_tool,
    free_port,
    issue_user_kubeconfig,
    project_root,
)
from kfserving_operator.webhooks.legacy_registration import (
    ISVC_CRD_NAME,
    shipped_conversion_patch,
)

OPERATOR_USER = "kfserving-operator"
IMPERSONATION_KEYS = ("as", "as-groups", "as-uid", "as-user-extra")


class RunError(RuntimeError):
    """make run cannot go on; the message says why and what to do."""


def _kubectl(kubeconfig: str, *args: str, input: str | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(find_tool("kubectl")), "--kubeconfig", kubeconfig, *args],
                            input=input, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RunError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _say(line: str) -> None:
    print(f"make run: {line}", flush=True)


# -- which cluster ---------------------------------------------------------------------------

def impersonation_in(kubeconfig_view: dict[str, object]) -> list[str]:
    """The impersonation settings of the current user in a minified kubeconfig view."""
    users = kubeconfig_view.get("users") or []
    found: list[str] = []
    for entry in users if isinstance(users, list) else []:
        user = entry.get("user") or {} if isinstance(entry, dict) else {}
        found += [key for key in IMPERSONATION_KEYS if user.get(key)]
    return found


def external_cluster(kubeconfig: str | None) -> str:
    """The explicitly named cluster, after saying what will be installed there."""
    if not kubeconfig:
        raise RunError("CLUSTER=external needs the cluster named explicitly: "
                       "make run CLUSTER=external KUBECONFIG=/path/to/kubeconfig")
    for path in kubeconfig.split(os.pathsep):
        if not Path(path).exists():
            raise RunError(f"KUBECONFIG names {path}, which does not exist")
    view = _kubectl(kubeconfig, "config", "view", "--minify", "-o", "json", check=False)
    if view.returncode != 0:
        raise RunError(f"cannot read KUBECONFIG={kubeconfig}: {view.stderr.strip()}")
    parsed = json.loads(view.stdout)
    impersonation = impersonation_in(parsed)
    if impersonation:
        raise RunError(
            f"the current user in KUBECONFIG={kubeconfig} impersonates "
            f"({', '.join(impersonation)}); the operator's client does not support "
            "impersonation and would act as the underlying identity. Use a kubeconfig "
            "whose user is the identity the operator should have.")
    server = parsed["clusters"][0]["cluster"]["server"]
    context = parsed.get("current-context", "?")
    ready = _kubectl(kubeconfig, "get", "--raw", "/readyz", "--request-timeout=5s", check=False)
    if ready.returncode != 0:
        raise RunError(f"the cluster of context {context} ({server}) is not reachable: "
                       f"{ready.stderr.strip()}")
    _say(f"using the cluster you named: context {context}, server {server}")
    _say("it will install there: CustomResourceDefinition inferenceservices.serving.kubeflow.org "
         "(server-side apply); namespace kfserving-system and ConfigMap "
         f"{CONFIGMAP_NAME} (only when missing); the Knative Service and Istio VirtualService "
         "stand-in CRDs (only when those CRDs are missing); and the operator's webhook "
         "configurations, pointing at https://127.0.0.1 on this machine")
    return kubeconfig


def lane_unavailable_reason() -> str | None:
    """Why the Knative lane cannot run here, or None."""
    return netns.unavailable_reason()


def build_tools(lane: bool) -> bool:
    """Build what this run needs (cached); False when the build failed."""
    what = "lane" if lane else "plane"
    _say(f"building the {'control plane and Knative lane' if lane else 'control plane'} "
         "tools where missing (cached in .cache/tools)")
    result = subprocess.run(["bash", str(project_root() / "hack" / "build-tools.sh"), what])
    return result.returncode == 0


def local_cluster(plane: LocalControlPlane) -> tuple[str, bool]:
    """Start (or reuse) the local cluster; return its kubeconfig and whether Knative runs."""
    choice = os.environ.get("KNATIVE", "lane")
    why_not = "KNATIVE=stand-in was asked for" if choice == "stand-in" else \
        lane_unavailable_reason()
    if why_not is None and not build_tools(lane=True):
        why_not = "the Knative lane's tools did not build (see above)"
    if why_not is None:
        started = time.monotonic()
        try:
            state = plane.up(lane=True, progress=_say)
            _say(f"local cluster with Knative Serving {state.knative_version} ready "
                 f"({time.monotonic() - started:.1f}s)")
            return state.kubeconfig, True
        except (ControlPlaneError, netns.NetnsError, RuntimeError) as exc:
            why_not = f"the Knative lane did not start: {exc}"
    _say(f"NOT running real Knative: {why_not}.")
    _say("Falling back to the control plane with the Knative stand-in CRD: Knative Services "
         "are stored but nothing makes them Ready, so InferenceServices stay not Ready.")
    if not build_tools(lane=False):
        raise RunError("the control-plane tools did not build")
    state = plane.up(progress=_say)
    return state.kubeconfig, False


# -- what the operator needs in the cluster ---------------------------------------------------

def install(kubeconfig: str, namespace: str, *, stand_ins: bool,
            config: OperatorConfig | None = None) -> None:
    root = project_root()
    # A CRD a local operator left pointing at its loopback conversion webhook (it was
    # killed) cannot be re-applied as is: point it back at the shipped Service first.
    _kubectl(kubeconfig, "patch", "crd", ISVC_CRD_NAME, "--type=merge", "-p",
             json.dumps(shipped_conversion_patch()), check=False)
    for crd in sorted((root / "crds").glob("*.yaml")):
        _kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(crd))
    if stand_ins:
        for stand_in in sorted((root / "hack" / "dev-crds").glob("*.yaml")):
            name = yaml.safe_load(stand_in.read_text())["metadata"]["name"]
            if _kubectl(kubeconfig, "get", "crd", name, check=False).returncode != 0:
                _say(f"{name} is not installed; installing the development stand-in")
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
            "data": (config or OperatorConfig()).to_configmap_data(),
        }
        _kubectl(kubeconfig, "apply", "-f", "-", input=yaml.safe_dump(configmap))
        which = ("the shipped defaults" if config is None
                 else "the shipped defaults with the local cluster's images")
        _say(f"created {namespace}/{CONFIGMAP_NAME}: {which}")


def print_next_steps(plane: LocalControlPlane | None, kubeconfig: str, knative: bool) -> None:
    """The exact commands for the user; neither kubectl nor the CLI need be on PATH."""
    root = project_root()
    cli = Path(sys.executable).parent / "kfserving-operator"
    cli_text = os.path.relpath(cli, Path.cwd()) if cli.is_relative_to(Path.cwd()) else str(cli)
    if plane is not None and knative:
        run = f"{cli_text} cluster exec --"
        lines = [
            f"{run} kubectl apply -f examples/local/sklearn.yaml",
            f"{run} kubectl wait --for=condition=Ready isvc/sklearn-iris --timeout=300s",
            f"{cli_text} cluster predict sklearn-iris --data examples/local/iris-input.json",
            f"{run} kubectl get isvc,ksvc,revisions,pods",
            f"{cli_text} cluster shell     # a shell with kubectl on PATH and KUBECONFIG set",
        ]
        _say("the cluster runs in its own network namespace (only loopback and its pods' "
             "bridge), with a real node; reach it with:")
    elif plane is not None:
        run = f"{cli_text} cluster exec --"
        lines = [
            f"{run} kubectl apply -f examples/sklearn.yaml",
            f"{run} kubectl get isvc -w",
            f"{run} kubectl get ksvc,revisions,pods",
            f"{cli_text} cluster shell     # a shell with kubectl on PATH and KUBECONFIG set",
        ]
        _say("the cluster is on loopback; reach it with:")
    else:
        kubectl = find_tool("kubectl")
        run = f"KUBECONFIG={kubeconfig} {kubectl}"
        lines = [f"{run} apply -f examples/sklearn.yaml", f"{run} get isvc -w"]
        _say("try:")
    for line in lines:
        print(f"    {line}", flush=True)
    if plane is not None:
        _say(f"(from {root}; `make cluster-down` stops the cluster, Ctrl-C only the operator)")


def main() -> int:
    namespace = os.environ.get("POD_NAMESPACE", DEFAULT_NAMESPACE)
    choice = os.environ.get("CLUSTER", "local")
    plane: LocalControlPlane | None = None
    try:
        if choice == "external":
            kubeconfig = external_cluster(os.environ.get("KUBECONFIG"))
            operator_kubeconfig = kubeconfig
            knative = False
        elif choice == "local":
            if os.environ.get("KUBECONFIG"):
                _say(f"ignoring KUBECONFIG={os.environ['KUBECONFIG']}: make run uses its own "
                     "local cluster; to use that one, say `make run CLUSTER=external "
                     "KUBECONFIG=...`")
            plane = LocalControlPlane()
            kubeconfig, knative = local_cluster(plane)
            state = plane.state()
            assert state is not None
            # Its own identity, so the audit log tells the operator's writes apart.
            operator_kubeconfig = str(issue_user_kubeconfig(
                state, OPERATOR_USER, ("system:masters",),
                Path(state.state_dir) / f"kubeconfig-{OPERATOR_USER}"))
        else:
            raise RunError(f"CLUSTER={choice} is not known; use CLUSTER=local (the default) "
                           "or CLUSTER=external KUBECONFIG=...")
        # On the lane the config names the images its real node has.
        install(kubeconfig, namespace, stand_ins=not knative,
                config=local_operator_config() if knative else None)
    except (RunError, ControlPlaneError) as exc:
        print(f"make run: error: {exc}", file=sys.stderr)
        return 1

    env = {**os.environ, "KUBECONFIG": operator_kubeconfig}
    port = free_port()
    command = [sys.executable, "-m", "kfserving_operator", "run", "--namespace", namespace,
               "--webhooks", "local", "--webhook-port", str(port)]
    print_next_steps(plane, kubeconfig, knative)
    _say(f"starting the operator (webhooks on 127.0.0.1:{port}); Ctrl-C to stop")
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
