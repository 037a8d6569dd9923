"""The ``kfserving-operator`` command line.

- ``cluster up|status|down``: the loopback control plane used by ``make run`` and the tests.
- ``run``: the operator itself (kopf handlers plus the admission webhooks).
- ``render``: print the children the reconciler would apply, without a cluster.
- ``crds``: write or check the generated CRD.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _cluster(args: argparse.Namespace) -> int:
    from kfserving_operator.cluster.localplane import ControlPlaneError, LocalControlPlane

    plane = LocalControlPlane(Path(args.state_dir) if args.state_dir else None)
    if args.action == "up":
        try:
            state = plane.up()
        except ControlPlaneError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"kube-apiserver ready at {state.apiserver_url}")
        print(f"KUBECONFIG={state.kubeconfig}")
        return 0
    if args.action == "status":
        print(plane.describe())
        return 0 if plane.is_healthy() else 1
    stopped = plane.down()
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _run(args: argparse.Namespace) -> int:
    # kopf probes for the official `kubernetes` client by importing it, which costs ~50 MiB
    # of memory when it is installed (it is, in the development venv, for the tests). The
    # operator logs in and talks to the API without it, so make that probe fail fast.
    if "kubernetes" not in sys.modules:
        sys.modules["kubernetes"] = None  # type: ignore[assignment]
    from kfserving_operator.operator.main import run_operator

    return run_operator(
        namespace=args.namespace,
        webhook_mode=args.webhooks,
        webhook_port=args.webhook_port,
        webhook_host=args.webhook_host,
        verbose=args.verbose,
        cert_dir=args.cert_dir,
    )


def _render(args: argparse.Namespace) -> int:
    from kfserving_operator.render import render_main

    result: int = render_main(args.filename, args.config)
    return result


def _crds(args: argparse.Namespace) -> int:
    from kfserving_operator.api.crd import main as crd_main

    return crd_main(["--check"] if args.check else [])


def _version() -> str:
    """The installed distribution's version (what an image or a wheel really carries)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kfserving-operator")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from kfserving_operator import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kfserving-operator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    cluster = commands.add_parser("cluster", help="manage the local loopback control plane")
    cluster.add_argument("action", choices=["up", "status", "down"])
    cluster.add_argument("--state-dir", help="state directory (default .cache/cluster)")
    cluster.set_defaults(func=_cluster)

    run = commands.add_parser("run", help="run the operator in the foreground")
    run.add_argument("--namespace", default=None,
                     help="namespace of the operator and its ConfigMap "
                          "(default: $POD_NAMESPACE or kfserving-system)")
    run.add_argument("--webhooks", choices=["auto", "local", "cluster", "off"], default="auto",
                     help="local: serve on loopback and register a url clientConfig; "
                          "cluster: serve for a Service reference; auto: cluster when in a pod")
    run.add_argument("--webhook-port", type=int, default=9443)
    run.add_argument("--webhook-host", default=None,
                     help="address to serve webhooks on (default: 127.0.0.1 in local mode, "
                          "0.0.0.0 in cluster mode)")
    run.add_argument("--cert-dir", default=None,
                     help="directory with tls.crt, tls.key and ca.crt (cert-manager); "
                          "default: a self-managed certificate in a Secret")
    run.add_argument("--verbose", action="store_true")
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
