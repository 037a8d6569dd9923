"""Run the operator: kopf's watches, the reconcile workers and the webhooks, in one process."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import kopf

from kfserving_operator.operator.handlers import (
    OperatorOptions,
    Runtime,
    build_registry,
    operator_namespace,
)
from kfserving_operator.operator.log_filters import quiet_request_retries


def _in_cluster() -> bool:
    return Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists() and bool(
        os.environ.get("KUBERNETES_SERVICE_HOST"))


def resolve_webhook_mode(mode: str) -> str:
    if mode == "auto":
        return "cluster" if _in_cluster() else "local"
    return mode


def run_operator(*, namespace: str | None, webhook_mode: str, webhook_port: int,
                 webhook_host: str | None, verbose: bool, cert_dir: str | None = None) -> int:
    """Run until interrupted; returns the process exit code."""
    mode = resolve_webhook_mode(webhook_mode)
    host = webhook_host or ("0.0.0.0" if mode == "cluster" else "127.0.0.1")
    options = OperatorOptions(
        namespace=operator_namespace(namespace),
        webhook_mode=mode,
        webhook_host=host,
        webhook_port=webhook_port,
        cert_dir=cert_dir or os.environ.get("KFSERVING_CERT_DIR"),
    )
    # kopf installs the one log handler; ours and the libraries' records go through it.
    kopf.configure(verbose=verbose)
    # One line per HTTP request, and one per watch event handled, drown what matters.
    for noisy in ("httpx2", "httpcore2", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not verbose:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    quiet_request_retries()
    runtime = Runtime(options)
    registry = build_registry(runtime)
    logging.getLogger("kfserving_operator").info(
        "starting: namespace=%s webhooks=%s", options.namespace, mode)
    asyncio.run(kopf.operator(registry=registry, standalone=True, clusterwide=True,
                              liveness_endpoint=os.environ.get("KFSERVING_LIVENESS")))
    return 0
