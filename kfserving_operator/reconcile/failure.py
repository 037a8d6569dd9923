"""Why a component's revision failed, in words a user can act on. Pure.

Knative reports a failed revision in a way that hides the cause where users look first. On a
failed *first* revision the Knative Service's ``Ready`` says ``RevisionMissing``
("Configuration ... does not have any ready Revision"); only ``ConfigurationsReady`` carries
``RevisionFailed`` and the Revision's own message. And that message is thin for several
common causes, because Knative looks at the pod only through its first app container:

* a crash loop becomes ``Container failed with: <termination message>``; the exit code is only
  in the Revision's reason (``ExitCode1``);
* an OOMKilled model server is ``ExitCode137`` with an empty message;
* a failing storage-initializer (an init container) shows up as the app container waiting in
  ``PodInitializing`` with no message at all;
* an unpullable image or an unschedulable pod carry the kubelet's / scheduler's message.

Knative decides *that* a revision failed (``ConfigurationsReady=False``, after its progress
deadline for pods that never start). This module only explains *why*, from the best source
the shell could read: the revision's pods first, then the Revision's failing condition, then
the Knative Service's ``ConfigurationsReady`` message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from kfserving_operator.api.constants import (
    FALSE,
    QUEUE_PROXY_CONTAINER_NAME,
    STORAGE_INITIALIZER_CONTAINER_NAME,
)
from kfserving_operator.reconcile.common import mapping, sequence, text

CONFIGURATIONS_READY: Final = "ConfigurationsReady"
REVISION_LABEL: Final = "serving.knative.dev/revision"

# Reasons this module sets (CamelCase, stable per cause so an event is said once).
REASON_UNSCHEDULABLE: Final = "Unschedulable"
REASON_IMAGE_PULL: Final = "ImagePullBackOff"
REASON_OOM_KILLED: Final = "OOMKilled"
REASON_CRASH_LOOP: Final = "CrashLoopBackOff"
REASON_STORAGE_INITIALIZER: Final = "StorageInitializerFailed"
REASON_INIT_CONTAINER: Final = "InitContainerFailed"
REASON_REVISION_FAILED: Final = "RevisionFailed"

# Kubelet waiting reasons that mean "the image cannot be pulled".
_IMAGE_PULL_REASONS: Final = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
     "RegistryUnavailable"}
)


# Where a cause was read, best first. Knative scales a failed revision's pods away, so a
# cause read from a pod is kept for as long as the same revision stays failed.
FROM_POD: Final = 2
FROM_REVISION: Final = 1
FROM_SERVICE: Final = 0


@dataclass(frozen=True)
class RevisionFailure:
    """The actionable cause of a failed revision."""

    revision: str
    reason: str
    message: str
    source: int = FROM_POD


def condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    for raw in sequence(status.get("conditions")):
        item = mapping(raw)
        if item.get("type") == type_:
            return item
    return {}


def failed_revision(ksvc: Mapping[str, Any] | None) -> str | None:
    """The revision to look into: the latest created one, when Knative says it failed.

    The shell reads that Revision and its pods (label ``serving.knative.dev/revision``) only
    for these, so a healthy InferenceService costs no extra request.
    """
    if ksvc is None:
        return None
    status = mapping(ksvc.get("status"))
    if condition(status, CONFIGURATIONS_READY).get("status") != FALSE:
        return None
    return text(status.get("latestCreatedRevisionName"))


def _exit_code(terminated: Mapping[str, Any]) -> int | None:
    code = terminated.get("exitCode")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _terminated(container_status: Mapping[str, Any]) -> Mapping[str, Any]:
    """The current or, while restarting, the last termination of a container."""
    current = mapping(mapping(container_status.get("state")).get("terminated"))
    if current:
        return current
    return mapping(mapping(container_status.get("lastState")).get("terminated"))


def _memory_limit(pod: Mapping[str, Any], container: str) -> str | None:
    for raw in sequence(mapping(pod.get("spec")).get("containers")):
        item = mapping(raw)
        if item.get("name") == container:
            return text(mapping(mapping(item.get("resources")).get("limits")).get("memory"))
    return None


def _detail(terminated: Mapping[str, Any]) -> str:
    message = (text(terminated.get("message")) or "").strip().rstrip(".")
    return f": {message}" if message else ""


def _image(pod: Mapping[str, Any], container_status: Mapping[str, Any]) -> str:
    name = container_status.get("name")
    for key in ("initContainers", "containers"):
        for raw in sequence(mapping(pod.get("spec")).get(key)):
            item = mapping(raw)
            if item.get("name") == name and text(item.get("image")):
                return str(item["image"])
    return text(container_status.get("image")) or "?"


def _image_pull(revision: str, pod: Mapping[str, Any],
                container_status: Mapping[str, Any]) -> RevisionFailure | None:
    waiting = mapping(mapping(container_status.get("state")).get("waiting"))
    if waiting.get("reason") not in _IMAGE_PULL_REASONS:
        return None
    name = container_status.get("name")
    kubelet = (text(waiting.get("message")) or "").strip()
    detail = f" ({waiting.get('reason')}: {kubelet})" if kubelet else f" ({waiting.get('reason')})"
    return RevisionFailure(
        revision,
        REASON_IMAGE_PULL,
        f'revision {revision}: image "{_image(pod, container_status)}" of container {name} '
        f"cannot be pulled{detail}; check the image name and tag, and the registry "
        "credentials of the service account",
    )


def _init_failure(revision: str, name: str, code: int,
                  terminated: Mapping[str, Any]) -> RevisionFailure:
    if name == STORAGE_INITIALIZER_CONTAINER_NAME:
        return RevisionFailure(
            revision,
            REASON_STORAGE_INITIALIZER,
            f"revision {revision}: the storage-initializer could not download the model "
            f"(exit code {code}){_detail(terminated)}; check storageUri and the "
            "storage credentials of the service account",
        )
    return RevisionFailure(
        revision,
        REASON_INIT_CONTAINER,
        f"revision {revision}: init container {name} failed (exit code {code})"
        f"{_detail(terminated)}",
    )


def _from_container(revision: str, pod: Mapping[str, Any], container_status: Mapping[str, Any],
                    *, init: bool) -> RevisionFailure | None:
    pulled = _image_pull(revision, pod, container_status)
    if pulled is not None:
        return pulled
    terminated = _terminated(container_status)
    code = _exit_code(terminated)
    # An init container that exited 0 did its job; a model server should never exit.
    if not terminated or code is None or (init and code == 0):
        return None
    name = str(container_status.get("name"))
    if init:
        return _init_failure(revision, name, code, terminated)
    if terminated.get("reason") == "OOMKilled":
        limit = _memory_limit(pod, name)
        within = f" of {limit}" if limit else ""
        return RevisionFailure(
            revision,
            REASON_OOM_KILLED,
            f"revision {revision}: container {name} was killed because it ran out of memory "
            f"(OOMKilled, exit code {code}); raise its memory limit{within} in "
            "resources.limits.memory, or serve a smaller model",
        )
    return RevisionFailure(
        revision,
        REASON_CRASH_LOOP,
        f"revision {revision}: container {name} keeps exiting with exit code {code}"
        f"{_detail(terminated)}; see its logs (kubectl logs --previous)",
    )


def _from_pod(revision: str, pod: Mapping[str, Any]) -> RevisionFailure | None:
    status = mapping(pod.get("status"))
    scheduled = condition(status, "PodScheduled")
    if scheduled.get("status") == FALSE:
        reason = text(scheduled.get("reason")) or REASON_UNSCHEDULABLE
        message = (text(scheduled.get("message")) or "").strip().rstrip(".")
        detail = f": {message}" if message else ""
        return RevisionFailure(
            revision,
            reason,
            f"revision {revision}: its pod cannot be scheduled{detail}; lower the resource "
            "requests or fix the nodeSelector, affinity or tolerations",
        )
    for raw in sequence(status.get("initContainerStatuses")):
        found = _from_container(revision, pod, mapping(raw), init=True)
        if found is not None:
            return found
    for raw in sequence(status.get("containerStatuses")):
        item = mapping(raw)
        if item.get("name") == QUEUE_PROXY_CONTAINER_NAME:
            continue
        found = _from_container(revision, pod, item, init=False)
        if found is not None:
            return found
    return None


def revision_failure(
    ksvc: Mapping[str, Any] | None,
    revision: Mapping[str, Any] | None = None,
    pods: Sequence[Mapping[str, Any]] = (),
) -> RevisionFailure | None:
    """The actionable cause of the failed latest revision of ``ksvc``, or None.

    ``revision`` is the Revision object named by ``failed_revision(ksvc)`` and ``pods`` its
    pods, when the shell could read them (either may be missing: the cause then comes from
    the next source down).
    """
    name = failed_revision(ksvc)
    if ksvc is None or name is None:
        return None
    for pod in sorted(pods, key=lambda p: text(mapping(p.get("metadata")).get("name")) or ""):
        if text(mapping(mapping(pod.get("metadata")).get("labels")).get(REVISION_LABEL)) != name:
            continue
        found = _from_pod(name, pod)
        if found is not None:
            return found
    if revision is not None and text(mapping(revision.get("metadata")).get("name")) == name:
        ready = condition(mapping(revision.get("status")), "Ready")
        if ready.get("status") == FALSE:
            reason = text(ready.get("reason")) or REASON_REVISION_FAILED
            message = (text(ready.get("message")) or "").strip() or "no message given"
            return RevisionFailure(name, reason, f"revision {name} failed: {reason}: {message}",
                                   FROM_REVISION)
    configurations = condition(mapping(ksvc.get("status")), CONFIGURATIONS_READY)
    reason = text(configurations.get("reason")) or REASON_REVISION_FAILED
    message = (text(configurations.get("message")) or "").strip() or f"revision {name} failed"
    return RevisionFailure(name, reason, message, FROM_SERVICE)


def _serving(ksvc_status: Mapping[str, Any]) -> list[tuple[str, int]]:
    """The revisions Knative routes traffic to, with their shares, in traffic order."""
    shares: dict[str, int] = {}
    for raw in sequence(ksvc_status.get("traffic")):
        target = mapping(raw)
        name, percent = text(target.get("revisionName")), target.get("percent")
        if name and isinstance(percent, int) and not isinstance(percent, bool) and percent > 0:
            shares[name] = shares.get(name, 0) + percent
    if not shares:
        latest_ready = text(ksvc_status.get("latestReadyRevisionName"))
        if latest_ready:
            shares[latest_ready] = 100
    return list(shares.items())


def with_serving(failure: RevisionFailure, ksvc: Mapping[str, Any]) -> str:
    """The cause, and what still serves: Knative never routes to a failed revision."""
    serving = [(name, share) for name, share in _serving(mapping(ksvc.get("status")))
               if name != failure.revision]
    cause = failure.message.rstrip(". ")
    if not serving:
        return f"{cause}; no revision is serving"
    if len(serving) == 1:
        return (f"{cause}; the previous revision {serving[0][0]} keeps serving all traffic, "
                f"{failure.revision} gets none")
    shares = ", ".join(f"{name} {share}%" for name, share in serving)
    return f"{cause}; the previous revisions keep serving ({shares}), {failure.revision} gets none"


_POD_REASONS: Final = frozenset({
    REASON_UNSCHEDULABLE, REASON_IMAGE_PULL, REASON_OOM_KILLED, REASON_CRASH_LOOP,
    REASON_STORAGE_INITIALIZER, REASON_INIT_CONTAINER,
})


def keep_better(failure: RevisionFailure, stored: Mapping[str, Any]) -> RevisionFailure:
    """The stored cause of the same revision when it was read from a pod and this one was not.

    ``stored`` is the component's stored ``<C>Ready`` condition (wire form). Without this, the
    status (and its event) would fall back to Knative's thinner words once the pods are gone.
    """
    if failure.source >= FROM_POD or stored.get("status") != FALSE:
        return failure
    reason, message = text(stored.get("reason")), text(stored.get("message"))
    if reason not in _POD_REASONS or not message:
        return failure
    prefix = f"revision {failure.revision}: "
    if not message.startswith(prefix):
        return failure
    for suffix in ("; no revision is serving", "; the previous revision "):
        cut = message.find(suffix)
        if cut >= 0:
            message = message[:cut]
    return RevisionFailure(failure.revision, reason, message, FROM_POD)


def pod_failure(revision: str, pod: Mapping[str, Any]) -> RevisionFailure | None:
    """The actionable cause one pod of ``revision`` shows, if any (raw mode reads pods too)."""
    return _from_pod(revision, pod)
