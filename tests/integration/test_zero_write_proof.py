"""The zero-write tests cannot pass with a dead or stuck operator.

Each of them first waits for the operator's proof of work (``wait_reconciled``: it logged a
finished reconcile of the object after the events, and its queue settled), and only then
counts writes. Here the operator is stuck (SIGSTOP) and then stopped: the same events get no
proof, so those tests fail, although the count of writes alone is zero and would pass.
"""

from __future__ import annotations

import signal

import pytest

from tests.support.cluster import Cluster
from tests.support.isvc import KSVC, sklearn_isvc
from tests.support.knative import KnativeStandIn
from tests.support.operator import OperatorProcess

PROOF_TIMEOUT = 5.0


def _touch(cluster: Cluster, namespace: str, value: str) -> None:
    """An event that makes the operator reconcile iris without anything to write."""
    cluster.kubectl("annotate", KSVC, "iris-predictor-default", "-n", namespace,
                    f"example.com/touched={value}", "--overwrite")


def test_a_stuck_or_stopped_operator_fails_the_proof_of_work(
        cluster: Cluster, namespace: str, operator: OperatorProcess | None) -> None:
    if operator is None or operator.audit_log is None:
        pytest.skip("needs this session's operator and the local control plane's audit log")
    cluster.apply_yaml(sklearn_isvc("iris"), namespace)
    KnativeStandIn(cluster, namespace).wait_for_ksvc("iris-predictor-default")
    key = f"{namespace}/iris"

    # Alive: the proof comes, and nothing was written for the touch.
    offset, since = operator.audit_offset(), operator.log_offset()
    _touch(cluster, namespace, "alive")
    operator.wait_reconciled(key, since=since)
    assert operator.writes_since(offset, namespace) == []

    # Stuck: the process exists but does nothing.
    operator.process.send_signal(signal.SIGSTOP)
    try:
        _assert_no_proof(cluster, namespace, operator, "stuck")
    finally:
        operator.process.send_signal(signal.SIGCONT)

    # Stopped: no process at all.
    operator.stop()
    try:
        _assert_no_proof(cluster, namespace, operator, "stopped")
    finally:
        operator.start()


def _assert_no_proof(cluster: Cluster, namespace: str, operator: OperatorProcess,
                     how: str) -> None:
    """The touch gets no proof of work, although it gets zero writes too."""
    offset, since = operator.audit_offset(), operator.log_offset()
    _touch(cluster, namespace, how)
    with pytest.raises(TimeoutError):
        operator.wait_reconciled(f"{namespace}/iris", since=since, timeout=PROOF_TIMEOUT)
    assert operator.writes_since(offset, namespace) == []  # the count alone would pass
