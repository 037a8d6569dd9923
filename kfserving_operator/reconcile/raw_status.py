"""A raw component's condition, read from its live Deployment, ReplicaSets and pods. Pure.

KServe copied the Deployment's ``Available`` condition from the Deployment it *wanted*, so
``ReplicaFailure`` and every pod problem were lost. Here, from the objects as they are:

* ``ReplicaFailure`` (pods cannot be created: quota, admission) is False with its message;
* a pod of the current revision that shows a cause ``failure.py`` knows (image pull, crash
  loop with its exit code, OOMKilled, storage initializer, unschedulable) is False with it,
  and says whether an older ReplicaSet keeps serving;
* ``Progressing=False`` (``ProgressDeadlineExceeded``) is False;
* the component is True once the deployment controller has seen the current generation,
  ``Available`` is True and no pod of an older template is left (a rollout is complete);
  until then Unknown, with the Deployment's own reason and message.

The current revision's pods are those of the ReplicaSet whose
``deployment.kubernetes.io/revision`` is the Deployment's (by ``pod-template-hash``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from kfserving_operator.api.constants import FALSE
from kfserving_operator.reconcile.common import mapping, sequence, text
from kfserving_operator.reconcile.conditions import TRUE, UNKNOWN, Cond
from kfserving_operator.reconcile.failure import RevisionFailure, condition, pod_failure

DEPLOYMENT_REVISION_ANNOTATION: Final = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH_LABEL: Final = "pod-template-hash"

REASON_DEPLOYMENT_NOT_CREATED: Final = "DeploymentNotCreated"
REASON_DEPLOYMENT_UPDATING: Final = "DeploymentUpdating"
REASON_ROLLING_OUT: Final = "RollingOut"
REASON_REPLICA_FAILURE: Final = "ReplicaFailure"
REASON_PROGRESS_DEADLINE: Final = "ProgressDeadlineExceeded"


@dataclass(frozen=True)
class RawComponentState:
    """What one raw Deployment says: its condition, and the pod cause if it failed."""

    cond: Cond
    failure: RevisionFailure | None = None

    @property
    def ready(self) -> bool:
        return self.cond.status == TRUE


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _name(obj: Mapping[str, Any]) -> str:
    return text(mapping(obj.get("metadata")).get("name")) or ""


def _revision(obj: Mapping[str, Any]) -> str | None:
    return text(mapping(mapping(obj.get("metadata")).get("annotations")).get(
        DEPLOYMENT_REVISION_ANNOTATION))


def current_replica_set(deployment: Mapping[str, Any],
                        replica_sets: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The ReplicaSet of the Deployment's current revision, if it is among ``replica_sets``."""
    wanted = _revision(deployment)
    if wanted is None:
        return None
    return next((rs for rs in replica_sets if _revision(rs) == wanted), None)


def _pod_hash(obj: Mapping[str, Any]) -> str | None:
    return text(mapping(mapping(obj.get("metadata")).get("labels")).get(POD_TEMPLATE_HASH_LABEL))


def _serving(current: Mapping[str, Any] | None,
             replica_sets: Sequence[Mapping[str, Any]]) -> str:
    older = sorted(_name(rs) for rs in replica_sets
                   if rs is not current and _int(mapping(rs.get("status")).get("readyReplicas")))
    if not older:
        return "no pod is serving"
    return f"the previous ReplicaSet {', '.join(older)} keeps serving"


def pod_cause(revision: str, deployment: Mapping[str, Any],
              replica_sets: Sequence[Mapping[str, Any]],
              pods: Sequence[Mapping[str, Any]]) -> RevisionFailure | None:
    """The first cause a pod of the current revision shows, with what keeps serving."""
    current = current_replica_set(deployment, replica_sets)
    wanted = _pod_hash(current) if current is not None else None
    for pod in sorted(pods, key=_name):
        if wanted is not None and _pod_hash(pod) != wanted:
            continue
        found = pod_failure(revision, pod)
        if found is not None:
            message = f"{found.message.rstrip('. ')}; {_serving(current, replica_sets)}"
            return RevisionFailure(found.revision, found.reason, message)
    return None


def is_current(deployment: Mapping[str, Any]) -> bool:
    generation = mapping(deployment.get("metadata")).get("generation")
    observed = mapping(deployment.get("status")).get("observedGeneration")
    if not isinstance(generation, int) or not isinstance(observed, int):
        return False
    return observed >= generation


def component_state(type_: str, ref: str, revision: str,
                    deployment: Mapping[str, Any] | None,
                    replica_sets: Sequence[Mapping[str, Any]] = (),
                    pods: Sequence[Mapping[str, Any]] = ()) -> RawComponentState:
    """The ``type_`` condition (``PredictorReady``...) of Deployment ``ref`` (ns/name)."""
    if deployment is None:
        return RawComponentState(Cond(type_, UNKNOWN, REASON_DEPLOYMENT_NOT_CREATED,
                                      f"Deployment {ref} has not been created yet"))
    status = mapping(deployment.get("status"))
    replica_failure = condition(status, "ReplicaFailure")
    if replica_failure.get("status") == TRUE:
        reason = text(replica_failure.get("reason")) or REASON_REPLICA_FAILURE
        detail = text(replica_failure.get("message")) or "no message given"
        return RawComponentState(Cond(type_, FALSE, REASON_REPLICA_FAILURE,
                                      f"Deployment {ref} cannot create its pods ({reason}): "
                                      f"{detail}"))
    cause = pod_cause(revision, deployment, replica_sets, pods)
    if cause is not None:
        return RawComponentState(Cond(type_, FALSE, cause.reason, cause.message), cause)
    progressing = condition(status, "Progressing")
    if progressing.get("status") == FALSE:
        reason = text(progressing.get("reason")) or REASON_PROGRESS_DEADLINE
        detail = text(progressing.get("message")) or "no message given"
        return RawComponentState(Cond(type_, FALSE, reason, f"Deployment {ref}: {detail}"))
    if not is_current(deployment):
        generation = mapping(deployment.get("metadata")).get("generation")
        return RawComponentState(Cond(
            type_, UNKNOWN, REASON_DEPLOYMENT_UPDATING,
            f"the deployment controller has not yet observed generation {generation} of "
            f"Deployment {ref}"))
    available = condition(status, "Available")
    replicas, updated = _int(status.get("replicas")), _int(status.get("updatedReplicas"))
    if available.get("status") == TRUE and updated > 0 and replicas <= updated:
        return RawComponentState(Cond(type_, TRUE))
    if available.get("status") == TRUE:
        return RawComponentState(Cond(
            type_, UNKNOWN, REASON_ROLLING_OUT,
            f"Deployment {ref} is rolling out revision {revision}: {updated} of {replicas} "
            f"pods updated, {_int(status.get('availableReplicas'))} available"))
    reason = text(available.get("reason")) or text(progressing.get("reason")) or "Progressing"
    detail = (text(available.get("message")) or text(progressing.get("message"))
              or "waiting for its pods")
    return RawComponentState(Cond(type_, UNKNOWN, reason, f"Deployment {ref}: {detail}"))


def needs_pods(deployment: Mapping[str, Any] | None) -> bool:
    """True when the shell should read the Deployment's ReplicaSets and pods: it is not
    complete and available, so a pod may say why."""
    if deployment is None:
        return False
    state = component_state("Ready", "", "", deployment)
    return not state.ready


def _containers_read(spec: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    """Of each container: what ``failure.py`` names (image) and quotes (memory limit)."""
    kept = []
    for raw in sequence(spec.get(key)):
        item = mapping(raw)
        entry: dict[str, Any] = {k: item[k] for k in ("name", "image") if k in item}
        memory = mapping(mapping(item.get("resources")).get("limits")).get("memory")
        if memory is not None:
            entry["resources"] = {"limits": {"memory": memory}}
        kept.append(entry)
    return kept


def _metadata_read(obj: Mapping[str, Any], annotations: tuple[str, ...]) -> dict[str, Any]:
    meta = mapping(obj.get("metadata"))
    kept: dict[str, Any] = {k: meta[k] for k in ("name", "namespace", "labels") if k in meta}
    wanted = {k: v for k, v in mapping(meta.get("annotations")).items() if k in annotations}
    if wanted:
        kept["annotations"] = wanted
    return kept


def pod_essentials(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a pod that :func:`component_state` reads (its identity, containers'
    images and memory limits, conditions and container states): what the shell keeps of
    each raw pod, and what has to change before a pod event is news."""
    spec = mapping(pod.get("spec"))
    status = mapping(pod.get("status"))
    return {
        "apiVersion": pod.get("apiVersion", "v1"), "kind": pod.get("kind", "Pod"),
        "metadata": _metadata_read(pod, ()),
        "spec": {key: _containers_read(spec, key) for key in ("initContainers", "containers")
                 if key in spec},
        "status": {key: status[key] for key in ("conditions", "initContainerStatuses",
                                                "containerStatuses") if key in status},
    }


def replica_set_essentials(replica_set: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a ReplicaSet that :func:`component_state` reads: its identity, revision
    and ready replicas."""
    ready = mapping(replica_set.get("status")).get("readyReplicas")
    return {
        "apiVersion": replica_set.get("apiVersion", "apps/v1"),
        "kind": replica_set.get("kind", "ReplicaSet"),
        "metadata": _metadata_read(replica_set, (DEPLOYMENT_REVISION_ANNOTATION,)),
        "status": {"readyReplicas": ready} if ready is not None else {},
    }


def deployment_pods_selector(deployment: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (label, value) that selects the Deployment's pods and ReplicaSets."""
    labels = mapping(mapping(deployment.get("spec")).get("selector")).get("matchLabels")
    items = sorted(mapping(labels).items())
    return (str(items[0][0]), str(items[0][1])) if len(items) == 1 else None


def route_problems(route: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(status, reason, message) of every parent condition of an HTTPRoute that is not True."""
    found: list[tuple[str, str, str]] = []
    for parent in sequence(mapping(route.get("status")).get("parents")):
        for raw in sequence(mapping(parent).get("conditions")):
            cond = mapping(raw)
            if cond.get("type") in ("Accepted", "ResolvedRefs") and cond.get("status") != TRUE:
                found.append((str(cond.get("status") or UNKNOWN),
                              text(cond.get("reason")) or str(cond.get("type")),
                              text(cond.get("message")) or "no message given"))
    return found


def route_accepted(route: Mapping[str, Any]) -> bool:
    parents = sequence(mapping(route.get("status")).get("parents"))
    return bool(parents) and not route_problems(route)
