"""``kfserving-operator render``: print the children the reconciler would apply, offline.

The InferenceServices are defaulted and validated exactly like the admission webhooks do,
then planned with Knative Services that are simulated as Ready (so the VirtualService, which
is only applied once every component is ready, is part of the preview). Output is a YAML
stream of the Knative Services, the ExternalName Service and the VirtualService, in apply
order, deterministic for the same input.

v1alpha2 InferenceServices are validated, defaulted and converted as the v1alpha2 webhooks
and the conversion webhook do, then rendered like v1beta1 ones. TrainedModels render as the
``modelconfig-<isvc>-0`` ConfigMap of their InferenceService, which must be in the same input;
every multi-model InferenceService gets that ConfigMap, with or without models.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, TextIO

import yaml

from kfserving_operator.api.config import OperatorConfig, parse_operator_config
from kfserving_operator.api.constants import API_VERSION, KNATIVE_API_VERSION
from kfserving_operator.api.conversion import to_v1beta1
from kfserving_operator.api.pipeline import parse_and_default
from kfserving_operator.api.trained_model import TM_API_VERSION, TM_KIND
from kfserving_operator.api.v1alpha2 import V1ALPHA2_API_VERSION
from kfserving_operator.api.v1alpha2_admission import default_v1alpha2, validate_v1alpha2
from kfserving_operator.reconcile.common import JsonDict, is_cluster_local, mapping, text
from kfserving_operator.reconcile.plan import Observed, Plan, plan_reconcile
from kfserving_operator.reconcile.trainedmodel import plan_trained_models, read_parent

DEFAULT_NAMESPACE: Final = "default"
# A fixed clock: the plan's status is not printed, but the output must not depend on time.
RENDER_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)
_UID_NAMESPACE: Final = uuid.UUID("8f1d6a3e-7f0b-4c59-9d2e-5b1f0c3a7e42")


class RenderError(Exception):
    """Input that cannot be rendered; the message is printed as is."""


def _prepared(isvc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with what the API server would have filled: namespace, uid, generation."""
    obj = dict(isvc)
    metadata = dict(mapping(obj.get("metadata")))
    metadata.setdefault("namespace", DEFAULT_NAMESPACE)
    if not text(metadata.get("uid")):
        key = f"{metadata.get('namespace')}/{metadata.get('name') or ''}"
        metadata["uid"] = str(uuid.uuid5(_UID_NAMESPACE, key))
    metadata.setdefault("generation", 1)
    obj["metadata"] = metadata
    return obj


def _next_revision(name: str, stored: Mapping[str, Any]) -> str:
    """``<ksvc>-00001``, or the successor of the newest revision the stored status names."""
    newest = 0
    for key in (
        "latestCreatedRevision",
        "latestReadyRevision",
        "latestRolledoutRevision",
        "previousRolledoutRevision",
    ):
        value = text(stored.get(key)) or ""
        suffix = value[len(name) + 1 :] if value.startswith(name + "-") else ""
        if suffix.isdigit():
            newest = max(newest, int(suffix))
    return f"{name}-{newest + 1:05d}"


def _simulate_status(
    ksvc: JsonDict, config: OperatorConfig, cluster_local: bool, stored: Mapping[str, Any]
) -> JsonDict:
    metadata = mapping(ksvc.get("metadata"))
    name = str(metadata.get("name"))
    namespace = str(metadata.get("namespace"))
    revision = _next_revision(name, stored)
    internal = f"{name}.{namespace}.svc.{config.ingress.cluster_domain}"
    host = internal if cluster_local else f"{name}.{namespace}.{config.ingress.ingress_domain}"
    traffic: list[JsonDict] = []
    for target in mapping(ksvc.get("spec")).get("traffic") or []:
        entry: JsonDict = {
            "revisionName": target.get("revisionName") or revision,
            "latestRevision": bool(target.get("latestRevision")),
            "percent": target.get("percent", 0),
        }
        if target.get("tag"):
            entry["tag"] = target["tag"]
            entry["url"] = f"{config.ingress.url_scheme}://{target['tag']}-{host}"
        traffic.append(entry)
    simulated = dict(ksvc)
    simulated["metadata"] = {**metadata, "generation": 1}
    simulated["status"] = {
        "observedGeneration": 1,
        "conditions": [
            {"type": t, "status": "True"} for t in ("ConfigurationsReady", "Ready", "RoutesReady")
        ],
        "url": f"{config.ingress.url_scheme}://{host}",
        "address": {"url": f"http://{internal}"},
        "latestCreatedRevisionName": revision,
        "latestReadyRevisionName": revision,
        "traffic": traffic,
    }
    return simulated


def simulated_ready_ksvcs(isvc: Mapping[str, Any], config: OperatorConfig) -> dict[str, JsonDict]:
    """Component -> the desired Knative Service with a Ready status, as Knative would report.

    URL ``<scheme>://<ksvc>.<ns>.<ingressDomain>`` (cluster-local: ``...svc.<clusterDomain>``),
    address ``http://<ksvc>.<ns>.svc.<clusterDomain>``, revision ``<ksvc>-00001``, traffic
    mirroring the desired ``spec.traffic``. When the isvc's status already names revisions of
    a component, the simulated new revision is the successor of the newest one.
    """
    prepared = _prepared(isvc)
    plan = plan_reconcile(prepared, config, Observed(ksvcs={}), RENDER_TIME)
    parsed, _ = parse_and_default(prepared, config)
    cluster_local = is_cluster_local(parsed) if parsed is not None else False
    components = mapping(mapping(prepared.get("status")).get("components"))
    result: dict[str, JsonDict] = {}
    for obj in plan.apply:
        if obj.get("apiVersion") != KNATIVE_API_VERSION or obj.get("kind") != "Service":
            continue
        component = str(mapping(mapping(obj.get("metadata")).get("labels")).get("component"))
        stored = mapping(components.get(component))
        result[component] = _simulate_status(obj, config, cluster_local, stored)
    return result


def render_plan(isvc: Mapping[str, Any], config: OperatorConfig) -> Plan:
    """The plan for ``isvc`` once its Knative Services are Ready (raises RenderError if invalid)."""
    prepared = _prepared(isvc)
    parsed, errors = parse_and_default(prepared, config)
    if parsed is None:
        raise RenderError("\n".join(f"admission webhook denied: {error}" for error in errors))
    observed = Observed(
        ksvcs=simulated_ready_ksvcs(prepared, config)
    )
    return plan_reconcile(prepared, config, observed, RENDER_TIME)


def render_objects(isvc: Mapping[str, Any], config: OperatorConfig) -> list[JsonDict]:
    """Knative Services, ExternalName Service and VirtualService for ``isvc``, in apply order."""
    return list(render_plan(isvc, config).apply)


def as_v1beta1(doc: Mapping[str, Any], config: OperatorConfig) -> Mapping[str, Any]:
    """A v1alpha2 InferenceService the way it is stored (raises RenderError if refused)."""
    if doc.get("apiVersion") != V1ALPHA2_API_VERSION:
        return doc
    errors = validate_v1alpha2(default_v1alpha2(doc, config), config)
    if errors:
        raise RenderError("\n".join(f"admission webhook denied: {error}" for error in errors))
    return to_v1beta1(default_v1alpha2(doc, config))


def render_model_configs(isvcs: list[Mapping[str, Any]], trained_models: list[Mapping[str, Any]],
                         config: OperatorConfig) -> tuple[list[JsonDict], list[str]]:
    """The model ConfigMap of every multi-model InferenceService, and the problems found."""
    parents: dict[tuple[str, str], Mapping[str, Any]] = {}
    for isvc in isvcs:
        prepared = _prepared(isvc)
        meta = mapping(prepared.get("metadata"))
        parents[(str(meta.get("namespace")), str(meta.get("name")))] = prepared
    children: dict[tuple[str, str], list[Mapping[str, Any]]] = {key: [] for key in parents}
    problems: list[str] = []
    for tm in trained_models:
        meta = mapping(tm.get("metadata"))
        namespace = text(meta.get("namespace")) or DEFAULT_NAMESPACE
        parent = text(mapping(tm.get("spec")).get("inferenceService")) or ""
        if (namespace, parent) not in parents:
            problems.append(f"error: TrainedModel {meta.get('name')}: its InferenceService "
                            f"{parent!r} is not in the input")
            continue
        children[(namespace, parent)].append(
            {**tm, "metadata": {**meta, "namespace": namespace}})
    objects: list[JsonDict] = []
    for (namespace, name), raw in parents.items():
        plan = plan_trained_models(read_parent(name, namespace, raw, config),
                                   children[(namespace, name)], config, RENDER_TIME)
        for model, status in sorted(plan.statuses.items()):
            for cond in status.get("conditions", []):
                if cond["type"] == "ModelConfigured" and cond["status"] != "True":
                    problems.append(f"error: TrainedModel {model}: {cond.get('message')}")
        if plan.config_map is not None:
            objects.append(plan.config_map)
    return objects, problems


def _load_documents(stream: TextIO) -> list[Any]:
    try:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]
    except yaml.YAMLError as exc:
        raise RenderError(f"error: cannot parse YAML: {exc}") from exc


def _read(filename: str) -> list[Any]:
    if filename == "-":
        return _load_documents(sys.stdin)
    if os.path.isdir(filename):
        # Like kubectl apply -f DIR: every .yaml/.yml/.json file, in name order.
        names = sorted(n for n in os.listdir(filename) if n.endswith((".yaml", ".yml", ".json")))
        return [doc for name in names for doc in _read(os.path.join(filename, name))]
    try:
        with open(filename, encoding="utf-8") as handle:
            return _load_documents(handle)
    except OSError as exc:
        raise RenderError(f"error: cannot read {filename}: {exc.strerror or exc}") from exc


def load_config(config_path: str | None) -> tuple[OperatorConfig, list[str]]:
    """The operator config from a ConfigMap manifest (the defaults without one)."""
    if config_path is None:
        return OperatorConfig(), []
    documents = _read(config_path)
    configmaps = [d for d in documents if isinstance(d, Mapping) and d.get("kind") == "ConfigMap"]
    if len(configmaps) != 1:
        raise RenderError(
            f"error: {config_path} must contain exactly one ConfigMap; found {len(configmaps)}"
        )
    data = configmaps[0].get("data") or {}
    if not isinstance(data, Mapping) or not all(isinstance(v, str) for v in data.values()):
        raise RenderError(f"error: {config_path}: data must map keys to strings")
    result = parse_operator_config({str(k): str(v) for k, v in data.items()})
    return result.config, [f"warning: {problem}" for problem in result.problems]


def dump_objects(objects: list[JsonDict]) -> str:
    """A YAML stream, keys sorted, one document per object."""
    return yaml.safe_dump_all(objects, sort_keys=True, default_flow_style=False, width=1000)


def render_main(filename: str, config_path: str | None) -> int:
    """CLI entry: render every InferenceService of ``filename`` ('-' = stdin)."""
    try:
        config, warnings = load_config(config_path)
        for warning in warnings:
            print(warning, file=sys.stderr)
        documents = _read(filename)
        objects: list[JsonDict] = []
        failed = False
        isvcs: list[Mapping[str, Any]] = []
        trained_models: list[Mapping[str, Any]] = []
        for index, doc in enumerate(documents):
            if (isinstance(doc, Mapping) and doc.get("kind") == TM_KIND
                    and doc.get("apiVersion") == TM_API_VERSION):
                trained_models.append(doc)
                continue
            if not isinstance(doc, Mapping) or doc.get("kind") != "InferenceService":
                kind = doc.get("kind") if isinstance(doc, Mapping) else type(doc).__name__
                print(
                    f"error: document {index + 1}: expected kind InferenceService or "
                    f"TrainedModel; got {kind!r}",
                    file=sys.stderr,
                )
                failed = True
                continue
            try:
                stored = as_v1beta1(doc, config)
                objects.extend(render_objects(stored, config))
                if stored.get("apiVersion") == API_VERSION:
                    isvcs.append(stored)
            except RenderError as exc:
                name = text(mapping(doc.get("metadata")).get("name")) or f"document {index + 1}"
                print(f"error: InferenceService {name}:\n{exc}", file=sys.stderr)
                failed = True
        model_configs, problems = render_model_configs(isvcs, trained_models, config)
        for problem in problems:
            print(problem, file=sys.stderr)
        objects.extend(model_configs)
        if failed or problems:
            return 1
        if not documents:
            print(f"error: {filename} contains no InferenceService", file=sys.stderr)
            return 1
    except RenderError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    sys.stdout.write(dump_objects(objects))
    return 0
