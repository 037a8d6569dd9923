"""The kfserving-operator command line: run, cluster, render and crds (argparse, plain text).


- ``cluster up [--knative]|status|down``: the loopback control plane used by ``make run`` and
  the tests; with ``--knative``, isolated in a network namespace with real Knative Serving.
- ``cluster exec -- CMD`` / ``cluster shell``: run kubectl, the operator or a shell where the
  cluster is reachable (inside its network namespace), with ``KUBECONFIG`` set.
- ``cluster predict NAME --data FILE``: send a prediction through the lane's ingress, with
  the Host header the InferenceService's URL leads to, and print the answer.
- ``run``: the operator itself (kopf handlers plus the admission webhooks).
- ``render``: print the children the reconciler would apply, without a cluster.
- ``crds``: write or check the generated CRD.

Help texts are plain text on purpose: they are read in terminals, not rendered.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kfserving_operator import __version__

if TYPE_CHECKING:
    from kfserving_operator.cluster.localplane import LocalControlPlane
    from kfserving_operator.operator.runtime import OperatorOptions


def _cluster(args: argparse.Namespace) -> int:
    from kfserving_operator.cluster.localplane import ControlPlaneError, LocalControlPlane
    from kfserving_operator.cluster.netns import NetnsError

    plane = LocalControlPlane(Path(args.state_dir) if args.state_dir else None)
    try:
        if args.action == "up":
            return _cluster_up(plane, args.knative)
        if args.action == "status":
            print(plane.describe())
            return 0 if plane.is_healthy() else 1
        if args.action in ("exec", "shell"):
            return _cluster_exec(plane, args.action, args.command)
        if args.action == "predict":
            return _cluster_predict(plane, args)
    except (ControlPlaneError, NetnsError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stopped = plane.down()
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _cluster_up(plane: LocalControlPlane, knative: bool) -> int:
    import time

    from kfserving_operator.cluster.localplane import default_state_dir

    started = time.monotonic()
    state = plane.up(lane=knative, progress=lambda line: print(line, flush=True))
    print(f"kube-apiserver ready at {state.apiserver_url}"
          + (f" with Knative Serving {state.knative_version}" if state.knative_version else "")
          + f" ({time.monotonic() - started:.1f}s)")
    print(f"KUBECONFIG={state.kubeconfig}")
    if state.netns_pid is not None:
        where = "" if plane.state_dir == default_state_dir() else f" --state-dir {plane.state_dir}"
        print("it is reachable only inside its network namespace; for example:")
        print(f"  {_self_command()} cluster exec{where} -- kubectl get ksvc -A")
    return 0


def _cluster_exec(plane: LocalControlPlane, action: str, command: list[str]) -> int:
    """Replace this process with ``command`` inside the cluster's namespace."""

    from kfserving_operator.cluster.localplane import tools_bin_dir

    state = plane.state()
    if state is None:
        print(f"error: no cluster recorded in {plane.state_dir}; "
              "start one with `cluster up --knative`", file=sys.stderr)
        return 1
    if command and command[0] == "--":
        command = command[1:]
    if action == "shell":
        command = [os.environ.get("SHELL") or "/bin/bash", *command]
    if not command:
        print("error: nothing to run; usage: cluster exec -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    plane.enter_namespace(state)
    env = dict(os.environ)
    env["KUBECONFIG"] = state.kubeconfig
    # kubectl and the other built tools, and this venv's kfserving-operator, come first.
    env["PATH"] = os.pathsep.join([str(tools_bin_dir()), str(Path(sys.executable).parent),
                                   env.get("PATH", "")])
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        print(f"error: cannot run {command[0]}: {exc}", file=sys.stderr)
        return 127


def _cluster_predict(plane: LocalControlPlane, args: argparse.Namespace) -> int:
    """Send a prediction through the lane's ingress; print the response body."""
    from kfserving_operator.cluster import predict
    from kfserving_operator.cluster.localplane import find_tool

    if len(args.command) != 1 or not args.data:
        print("error: usage: cluster predict NAME [-n NAMESPACE] --data FILE [--v2] "
              "[--path PATH]", file=sys.stderr)
        return 2
    name = args.command[0]
    state = plane.state()
    if state is None or not state.ingress_address:
        print(f"error: no lane with an ingress in {plane.state_dir}; start one with "
              "`make run` or `cluster up --knative`", file=sys.stderr)
        return 1
    try:
        body = predict.load_body(args.data)
        plane.enter_namespace(state)
        route = predict.resolve_route(find_tool("kubectl"), state.kubeconfig, name,
                                      args.namespace)
        path = predict.request_path(name, v2=args.v2, path=args.path)
        status, response = predict.send(state.ingress_address, route, path, body)
    except (predict.PredictError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(predict.printable(response))
    if not 200 <= status < 300:
        print(f"error: HTTP {status} from {route.host}{path}", file=sys.stderr)
        return 1
    return 0


def _self_command() -> str:
    """How the user can call this CLI again (it may not be on PATH)."""
    import shutil

    here = Path(sys.argv[0])
    if here.name == "kfserving-operator" and shutil.which("kfserving-operator") != str(here):
        return os.path.relpath(here) if here.is_absolute() else str(here)
    return "kfserving-operator"


def _run(args: argparse.Namespace) -> int:
    from kfserving_operator.logs import configure_logging

    configure_logging(args.log_format, args.verbose)
    # kopf probes for the official `kubernetes` client by importing it, which costs ~50 MiB
    # of memory when it is installed (it is, in the development venv, for the tests). The
    # operator logs in and talks to the API without it, so make that probe fail fast.
    if "kubernetes" not in sys.modules:
        sys.modules["kubernetes"] = None  # type: ignore[assignment]
    from kfserving_operator.operator.main import run_operator

    return run_operator(run_options(args))


def run_options(args: argparse.Namespace) -> OperatorOptions:
    """The operator's options from ``run``'s arguments, with the mode's defaults filled in."""
    from kfserving_operator.operator.main import operator_namespace, resolve_webhook_mode
    from kfserving_operator.operator.runtime import OperatorOptions

    mode = resolve_webhook_mode(args.webhooks)
    in_cluster = mode == "cluster"
    # Locally nothing may assume a fixed port is free: both servers take any free one.
    default_port, default_host = (9443, "0.0.0.0") if in_cluster else (0, "127.0.0.1")
    return OperatorOptions(
        namespace=operator_namespace(args.namespace),
        webhook_mode=mode,
        webhook_host=args.webhook_host or default_host,
        webhook_port=default_port if args.webhook_port is None else args.webhook_port,
        webhook_url=args.webhook_url,
        cert_dir=args.cert_dir or os.environ.get("KFSERVING_CERT_DIR"),
        health_host=args.health_host or default_host,
        health_port=(8080 if in_cluster else 0) if args.health_port is None
        else args.health_port,
        leader_election=args.leader_elect,
        lease_timing=args.lease_timing,
        drain_seconds=(5.0 if in_cluster else 1.0) if args.shutdown_drain_seconds is None
        else args.shutdown_drain_seconds,
        watch_namespaces=tuple(sorted(set(args.watch_namespaces or ()))),
    )


def _render(args: argparse.Namespace) -> int:
    from kfserving_operator.render import render_main

    result: int = render_main(args.filename, args.config)
    return result


def _crds(args: argparse.Namespace) -> int:
    from kfserving_operator.api.crd import main as crd_main

    return crd_main(["--check"] if args.check else [])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kfserving-operator",
        description="Serve KFServing v1beta1 InferenceServices on Knative and Istio.",
        epilog='Run "kfserving-operator COMMAND --help" for the options of one command.')
    parser.add_argument("--version", action="version", version=f"kfserving-operator {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cluster = commands.add_parser(
        "cluster", help="start, inspect or stop the loopback control plane (make run, tests)")
    cluster.add_argument("action", choices=["up", "status", "down", "exec", "shell", "predict"])
    cluster.add_argument("--state-dir", help="state directory (default .cache/cluster)")
    cluster.add_argument("--knative", action="store_true",
                         help="up: also run real Knative Serving (kube-scheduler, KWOK, "
                              "Knative), all inside a network namespace with only loopback")
    cluster.add_argument("command", nargs="*",
                         help="exec/shell: the command to run, after --; "
                              "predict: the InferenceService's name")
    cluster.add_argument("-n", "--namespace", default="default",
                         help="predict: the InferenceService's namespace (default: default)")
    cluster.add_argument("--data", help="predict: a JSON file with the request body")
    cluster.add_argument("--v2", action="store_true",
                         help="predict: the v2 protocol path /v2/models/NAME/infer "
                              "(default: v1, /v1/models/NAME:predict)")
    cluster.add_argument("--path", help="predict: another request path (e.g. an explainer's)")
    cluster.set_defaults(func=_cluster)

    run = commands.add_parser(
        "run", help="the operator: watches, reconcilers, admission webhooks, probes, metrics",
        description="Run the operator in the foreground until SIGTERM or Ctrl-C.")
    run.add_argument("--namespace", default=None,
                     help="namespace of the operator, its ConfigMap and its Lease "
                          "(default: $POD_NAMESPACE or kfserving-system)")
    run.add_argument("--watch-namespace", dest="watch_namespaces", action="append",
                     metavar="NAMESPACE",
                     help="reconcile and admit InferenceServices only in this namespace "
                          "(repeatable); needs only namespaced read access. Default: all")
    run.add_argument("--webhooks", choices=["auto", "local", "cluster", "off"], default="auto",
                     help="local: serve on loopback and register a url clientConfig; "
                          "cluster: serve for a Service reference; auto: cluster when in a pod")
    run.add_argument("--webhook-port", type=int, default=None,
                     help="webhook port (default: 9443 in cluster mode, any free port locally)")
    run.add_argument("--webhook-host", default=None,
                     help="address to serve webhooks on (default: 127.0.0.1 in local mode, "
                          "0.0.0.0 in cluster mode)")
    run.add_argument("--webhook-url", default=None,
                     help="cluster mode: register this base URL (a load balancer in front of "
                          "the replicas) instead of the webhook Service")
    run.add_argument("--cert-dir", default=None,
                     help="directory with tls.crt, tls.key and ca.crt (cert-manager); "
                          "default: a self-managed certificate in a Secret")
    run.add_argument("--health-port", type=int, default=None,
                     help="port of /healthz, /readyz and /metrics (default: 8080 in cluster "
                          "mode, any free port locally)")
    run.add_argument("--health-host", default=None,
                     help="address of the probe and metrics server (default: as the webhooks)")
    run.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
                     help="reconcile only while holding the Lease "
                          "kfserving-controller-manager-leader (default: on)")
    run.add_argument("--leader-election-lease-duration", type=float, default=15.0,
                     metavar="SECONDS",
                     help="how long followers wait before taking over a Lease that is no "
                          "longer renewed (default: 15)")
    run.add_argument("--leader-election-renew-deadline", type=float, default=10.0,
                     metavar="SECONDS",
                     help="how long the leader retries a renewal before it stops leading "
                          "(default: 10)")
    run.add_argument("--leader-election-retry-period", type=float, default=2.0,
                     metavar="SECONDS",
                     help="how often to try to acquire or renew the Lease (default: 2)")
    run.add_argument("--shutdown-drain-seconds", type=float, default=None, metavar="SECONDS",
                     help="after SIGTERM, report not-ready and keep answering admission this "
                          "long before exiting (default: 5 in cluster mode, 1 locally)")
    run.add_argument("--log-format", choices=["text", "json"], default="text",
                     help="text (with full logger names) or one JSON object per line")
    run.add_argument("--verbose", action="store_true", help="debug logging")
    run.set_defaults(func=_run)

    render = commands.add_parser("render", help="print the children of an InferenceService")
    render.add_argument("-f", "--filename", required=True,
                        help="InferenceService and TrainedModel YAML (a file, a directory, or -)")
    render.add_argument("--config", help="inferenceservice-config ConfigMap YAML")
    render.set_defaults(func=_render)

    crds = commands.add_parser("crds", help="generate the CRD into crds/")
    crds.add_argument("--check", action="store_true", help="fail when crds/ is out of date")
    crds.set_defaults(func=_crds)
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line; what follows ``--`` is ``cluster exec``'s command, verbatim."""
    argv = list(argv)
    # Everything after the first `--` is the command of `cluster exec`/`shell`, verbatim:
    # argparse would otherwise read its options as ours wherever they stand.
    trailing: list[str] | None = None
    if "--" in argv:
        cut = argv.index("--")
        argv, trailing = argv[:cut], argv[cut + 1:]
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    # `cluster predict --state-dir D NAME`: argparse gives a '*' positional nothing once an
    # option came between; a plain word left over is that positional's.
    if extras:
        if getattr(args, "func", None) is not _cluster or any(e.startswith("-") for e in extras):
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        args.command = [*args.command, *extras]
    if trailing is not None:
        if getattr(args, "action", None) not in ("exec", "shell"):
            parser.error("`--` is only for `cluster exec -- COMMAND`")
        args.command = [*args.command, *trailing]
    if args.func is _run:
        from kfserving_operator.k8s.leader import LeaseTiming

        try:
            args.lease_timing = LeaseTiming(args.leader_election_lease_duration,
                                            args.leader_election_renew_deadline,
                                            args.leader_election_retry_period)
        except ValueError as exc:
            parser.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
