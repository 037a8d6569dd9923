"""Two operator replicas against one real cluster: leader election and admission without gaps.

What the issue asks, measured on the server side:

1. only the leader writes: every write request in the apiserver's audit log, by the user
   each replica authenticates as, while both run and InferenceServices are created;
2. killing the leader (SIGKILL, nothing released) hands the Lease over within the Lease
   duration, and changes made while nobody led are reconciled by the new leader;
3. admission keeps answering throughout a rolling restart of both replicas: a client sends
   admission requests (server-side dry-run creates, valid and invalid) the whole time and
   counts every answer that is neither an admission nor the validator's denial.

How two processes share one webhook configuration: as in a cluster, where the webhook
Service spreads connections over the ready pods. Here the replicas run in ``cluster`` mode
with one shared mounted certificate (as cert-manager mounts it into every pod) and register
the URL of a loopback TCP balancer (``tests/support/balancer.py``) that forwards each new
connection to a replica whose ``/readyz`` passes, as kube-proxy does with Service endpoints.
The rolling restart follows the chart's strategy: a new replica starts and becomes ready
before an old one gets SIGTERM (maxSurge 1, maxUnavailable 0).

Runs on a control plane of its own, so that no other operator of the test session reconciles
(or registers webhooks) in it.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from kfserving_operator.api import constants as c
from kfserving_operator.api.constants import WEBHOOK_SERVICE_NAME
from kfserving_operator.webhooks import certificates
from tests.support.balancer import LoopbackBalancer
from tests.support.cluster import Cluster, bare_local_cluster, install_crds, wait_for
from tests.support.metrics import parse, value
from tests.support.operator import audit_writes
from tests.support.replicas import Replica, ReplicaSet, describe, writes_by_user

LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 4.0, 2.5, 0.5
LEASE_ARGS = ("--leader-election-lease-duration", str(LEASE_DURATION),
              "--leader-election-renew-deadline", str(RENEW_DEADLINE),
              "--leader-election-retry-period", str(RETRY_PERIOD))
DRAIN_SECONDS = 5.0
GROUP, VERSION, PLURAL = "serving.kubeflow.org", "v1beta1", "inferenceservices"


@pytest.fixture(scope="module")
def ha_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.environ.get("KFSERVING_TEST_KUBECONFIG"):
        pytest.skip("needs a control plane of its own (and its audit log)")
    with bare_local_cluster(tmp_path_factory.mktemp("ha-plane")) as cluster:
        install_crds(cluster)
        yield cluster


def isvc(name: str, uri: str = "gs://models/iris/v1", valid: bool = True) -> dict[str, Any]:
    predictor: dict[str, Any] = {"sklearn": {"storageUri": uri}}
    if not valid:  # passes the CRD schema; only the validating webhook refuses it
        predictor["xgboost"] = {"storageUri": uri}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService",
            "metadata": {"name": name}, "spec": {"predictor": predictor}}


def ksvc_uri(cluster: Cluster, namespace: str, name: str) -> str | None:
    """The storage URI the predictor's Knative Service was given, once it exists."""
    out = cluster.kubectl("get", "services.serving.knative.dev", f"{name}-predictor-default",
                          "-n", namespace, "-o", "json", check=False)
    if not out:
        return None
    template = json.loads(out)["spec"]["template"]
    annotations = template.get("metadata", {}).get("annotations") or {}
    uri = annotations.get(c.STORAGE_INITIALIZER_SOURCE_URI_ANNOTATION)
    return str(uri) if uri else "present"


def reconciled(cluster: Cluster, namespace: str, name: str) -> bool:
    status = cluster.get_json("isvc", name, "-n", namespace).get("status") or {}
    return bool(status.get("conditions")) and ksvc_uri(cluster, namespace, name) is not None


class AdmissionLoad(threading.Thread):
    """Admission requests without pause: server-side dry-run creates, one in four invalid."""

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        super().__init__(daemon=True, name="admission-load")
        client = kubernetes.config.new_client_from_config(config_file=kubeconfig)
        self.api = kubernetes.client.CustomObjectsApi(client)
        self.namespace = namespace
        self.stopping = threading.Event()
        self.allowed = 0
        self.denied = 0
        self.failures: list[str] = []

    def run(self) -> None:
        number = 0
        while not self.stopping.is_set():
            number += 1
            valid = number % 4 != 0
            try:
                self.api.create_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, isvc(f"load-{number}", valid=valid),
                    dry_run="All", _request_timeout=20)
            except kubernetes.client.ApiException as exc:
                body = str(exc.body)
                if not valid and exc.status == 422 and "exactly one of" in body:
                    self.denied += 1  # the validator answered, as it should
                else:
                    self.failures.append(f"#{number} {exc.status}: {body[:300]}")
            except Exception as exc:  # connection errors and timeouts count as failures
                self.failures.append(f"#{number} {type(exc).__name__}: {exc}")
            else:
                if valid:
                    self.allowed += 1
                else:
                    self.failures.append(f"#{number}: an invalid object was admitted")
            time.sleep(0.02)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)


def _seconds(event: dict[str, Any]) -> float:
    """When the apiserver received a request (epoch seconds)."""
    stamp = event["requestReceivedTimestamp"].replace("Z", "+00:00")
    return datetime.fromisoformat(stamp).timestamp()


def test_two_replicas_only_the_leader_writes_handover_and_rolling_restart(
        ha_cluster: Cluster, tmp_path: Path, report: Callable[[str], None]) -> None:
    cluster = ha_cluster
    assert cluster.local_state is not None
    audit = Path(cluster.local_state.state_dir) / "logs" / "audit.log"
    namespace = "ha-models"
    cluster.kubectl("create", "namespace", namespace, check=False)
    balancer = LoopbackBalancer()
    balancer.start()
    replicas = ReplicaSet(cluster, tmp_path, f"https://127.0.0.1:{balancer.port}",
                          lease_args=LEASE_ARGS, drain_seconds=DRAIN_SECONDS)
    load: AdmissionLoad | None = None

    def start(name: str) -> Replica:
        replica = replicas.new(name)
        replica.start()
        balancer.add(name, replica.webhook_port, replica.health_port)
        replica.wait_ready()
        return replica

    try:
        start_offset = audit.stat().st_size
        a, b = replicas.new("a"), replicas.new("b", "--log-format", "json")
        for replica in (a, b):  # both at once, as a Deployment's first rollout does
            replica.start()
            balancer.add(replica.name, replica.webhook_port, replica.health_port)
        for replica in (a, b):
            replica.wait_ready()
        leader_name = wait_for(replicas.holder, timeout=30, message="a leader")
        leader, follower = (a, b) if leader_name == "a" else (b, a)
        # Starting, the follower at most registers the webhooks it serves, the CRD's
        # conversion webhook included (every replica makes sure of that; two starting at
        # once may both find it missing); the config, events and the rest are the leader's.
        # (Its losing attempt to create the Lease, refused with 409, changed nothing.)
        started_writes = [e for e in writes_by_user(audit_writes(audit, start_offset)).get(
            follower.user, []) if e.get("objectRef", {}).get("resource") not in (
                "mutatingwebhookconfigurations", "validatingwebhookconfigurations",
                "customresourcedefinitions")
            and e.get("responseStatus", {}).get("code", 0) < 400]
        assert started_writes == [], [describe(e) for e in started_writes]

        # -- 1. only the leader writes -------------------------------------------------------
        offset = audit.stat().st_size
        names = [f"model-{i}" for i in range(4)]
        for name in names:
            cluster.apply_yaml(isvc(name), namespace)
        for name in names:
            wait_for(lambda name=name: reconciled(cluster, namespace, name), timeout=60,
                     message=f"{name} reconciled")
        time.sleep(3 * RETRY_PERIOD)  # time for any late write to land
        by_user = writes_by_user(audit_writes(audit, offset))
        follower_writes = by_user.get(follower.user, [])
        leader_writes = [e for e in by_user.get(leader.user, [])
                         if e.get("objectRef", {}).get("namespace") == namespace]
        renewals = [e for e in by_user.get(leader.user, [])
                    if e.get("objectRef", {}).get("resource") == "leases"]
        report(f"writes while both ran: leader {leader.name} {len(leader_writes)} in the "
               f"namespace (+{len(renewals)} Lease renewals), follower {follower.name} "
               f"{len(follower_writes)}")
        assert follower_writes == [], [describe(e) for e in follower_writes]
        assert len(leader_writes) >= 2 * len(names)  # children and status of each
        # Each replica's metrics say the same: only the leader reconciled.
        leader_metrics, follower_metrics = leader.metrics(), follower.metrics()
        assert value(parse(leader_metrics), "kfserving_leader") == 1
        assert value(parse(follower_metrics), "kfserving_leader") == 0
        assert value(parse(leader_metrics), "kfserving_reconcile_total", result="success") >= 4
        assert value(parse(follower_metrics), "kfserving_reconcile_total", result="success") == 0
        assert "reconcile ha-models/model-0: " in leader.log()
        # b logs JSON: every line is one object, kopf's and the libraries' included.
        records = [json.loads(line) for line in b.log().splitlines()]
        assert {"kfserving_operator.operator.health", "kopf.activities.authentication"} <= {
            record["logger"] for record in records}

        # -- 2. killing the leader hands over within the Lease duration ----------------------
        transitions = replicas.lease()["spec"].get("leaseTransitions", 0)
        leader.kill()
        killed_at, killed_wall = time.monotonic(), time.time()
        balancer.remove(leader.name)
        # Changes while nobody leads: a new InferenceService and a spec change.
        cluster.apply_yaml(isvc("made-during-handover"), namespace)
        cluster.apply_yaml(isvc("model-0", uri="gs://models/iris/v2"), namespace)
        wait_for(lambda: replicas.holder() == follower.name, timeout=30, interval=0.05,
                 message="the follower to take the Lease")
        # Timed on the server: the old leader's last renewal and the new leader's takeover
        # as the apiserver received them (the same clock as the kill's).
        lease_writes = [e for e in audit_writes(audit, offset)
                        if e.get("objectRef", {}).get("resource") == "leases"
                        and e.get("responseStatus", {}).get("code") == 200]
        last_renewal = max(_seconds(e) for e in lease_writes
                           if e["user"]["username"] == leader.user)
        takeover = min(_seconds(e) for e in lease_writes
                       if e["user"]["username"] == follower.user)
        handover = takeover - killed_wall
        unrenewed = takeover - last_renewal
        wait_for(lambda: reconciled(cluster, namespace, "made-during-handover"), timeout=30,
                 message="the InferenceService made during the handover reconciled")
        wait_for(lambda: ksvc_uri(cluster, namespace, "model-0") == "gs://models/iris/v2",
                 timeout=30, message="the spec change made during the handover reconciled")
        caught_up = time.monotonic() - killed_at
        lease = replicas.lease()["spec"]
        report(f"handover after SIGKILL of the leader: taken over {handover:.2f}s after the "
               f"kill, {unrenewed:.2f}s after its last renewal (Lease duration "
               f"{LEASE_DURATION:.0f}s, retry period {RETRY_PERIOD}s); changes made meanwhile "
               f"reconciled {caught_up:.2f}s after the kill; leaseTransitions "
               f"{transitions} -> {lease['leaseTransitions']}")
        assert lease["leaseTransitions"] == transitions + 1
        assert lease["leaseDurationSeconds"] == round(LEASE_DURATION)
        # Taken over within the Lease duration of the last renewal (which came before the
        # kill), with slack for the takeover's own GET and PUT; not before it expired.
        assert unrenewed <= LEASE_DURATION + 0.5
        assert handover <= LEASE_DURATION + 0.5
        assert unrenewed >= LEASE_DURATION - 2 * RETRY_PERIOD

        # -- 3. admission answers throughout a rolling restart of both replicas --------------
        c = start("c")  # the killed pod's replacement
        load = AdmissionLoad(cluster.kubeconfig, namespace)
        load.start()
        time.sleep(2)
        handovers: list[float] = []
        generation = iter("defgh")
        for old in (follower, c):  # follower is the leader now; c follows
            start(next(generation))  # ready before the old one stops
            was_leader = replicas.holder() == old.name
            stopped_at = time.monotonic()
            old.send_term()
            if was_leader:
                wait_for(lambda old=old: replicas.holder() not in (None, old.name),
                         timeout=30, interval=0.05, message="a new leader after SIGTERM")
                handovers.append(time.monotonic() - stopped_at)
            old.wait_exit()
            balancer.remove(old.name)
        time.sleep(2)
        load.stop()
        total = load.allowed + load.denied + len(load.failures)
        report(f"rolling restart of both replicas: {total} admission requests, "
               f"{load.allowed} allowed, {load.denied} denied by the validator, "
               f"{len(load.failures)} failed; connections the balancer found no ready "
               f"replica for: {balancer.refused}; graceful handovers "
               + ", ".join(f"{seconds:.2f}s" for seconds in handovers))
        assert load.failures == [], load.failures[:5]
        assert load.allowed >= 50 and load.denied >= 10
        assert balancer.refused == 0
        assert handovers and all(seconds < LEASE_DURATION for seconds in handovers), (
            "a SIGTERM'd leader releases the Lease")

        # The replicas of the new generation lead and reconcile.
        cluster.apply_yaml(isvc("after-rollout"), namespace)
        wait_for(lambda: reconciled(cluster, namespace, "after-rollout"), timeout=30,
                 message="an InferenceService created after the rolling restart reconciled")
    finally:
        if load is not None and load.is_alive():
            load.stop()
        replicas.stop_all()
        balancer.stop()
        for replica in replicas.replicas.values():
            print(f"\n--- replica {replica.name} log tail ---\n{replica.log()[-2500:]}")


def test_replicas_starting_together_issue_one_certificate(
        ha_cluster: Cluster, tmp_path: Path, report: Callable[[str], None]) -> None:
    """Without cert-manager, only the leader issues the Secret; every replica serves it."""
    cluster = ha_cluster
    assert cluster.local_state is not None
    audit = Path(cluster.local_state.state_dir) / "logs" / "audit.log"
    replicas = ReplicaSet(cluster, tmp_path, None, lease_args=LEASE_ARGS, drain_seconds=0)
    offset = audit.stat().st_size
    started = [replicas.new(name) for name in ("a", "b", "c")]
    try:
        for replica in started:  # all at once, as a Deployment's first rollout does
            replica.start()
        for replica in started:
            replica.wait_ready()
        secret = cluster.get_json("secret", certificates.SECRET_NAME, "-n", replicas.namespace)
        served_by_secret = ssl.PEM_cert_to_DER_cert(
            base64.b64decode(secret["data"]["tls.crt"]).decode())
        bundle = base64.b64decode(secret["data"]["ca.crt"])
        for replica in started:
            served = _served_pem(replica.webhook_port, bundle)
            assert served == served_by_secret, f"replica {replica.name} serves another cert"
        secret_writes = [e for e in audit_writes(audit, offset)
                         if e.get("objectRef", {}).get("resource") == "secrets"]
        report(f"3 replicas started together: {len(secret_writes)} write of the certificate "
               f"Secret, by {sorted({e['user']['username'] for e in secret_writes})}")
        assert len(secret_writes) == 1
    finally:
        replicas.stop_all()


def _served_pem(port: int, bundle: bytes) -> bytes:
    """The certificate (DER) a replica serves, verified as the apiserver would."""
    context = ssl.create_default_context(cadata=bundle.decode())
    host = f"{WEBHOOK_SERVICE_NAME}.kfserving-system.svc"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der
