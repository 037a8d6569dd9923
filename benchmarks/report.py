"""Turn a result JSON into rows: figure, ratio to the bare client, goal, PASS/MISS.

Goals are those written down in docs/benchmark-goals.md (the "goal" figure, and "stretch"
where one is given). They live here, never in the timed tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

PASS, MISS, INFO = "PASS", "MISS", "info"
PER_OBJECT_GETS = frozenset(f"get {r}" for r in (
    "inferenceservices", "services", "services.serving", "virtualservices.networking"))


@dataclass(frozen=True)
class Row:
    bench: str
    metric: str
    value: str
    ratio: str
    goal: str
    result: str


def _num(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ok(condition: bool | None) -> str:
    if condition is None:
        return INFO
    return PASS if condition else MISS


def _finite(*values: Any) -> bool:
    return all(isinstance(v, int | float) and not math.isnan(v) for v in values)


def rows(results: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    cal = results.get("calibration") or {}
    w_raw = cal.get("writes_per_s")
    rt = cal.get("round_trip") or {}
    rt50, rt99 = rt.get("p50_ms"), rt.get("p99_ms")
    details = cal.get("details") or {}
    if cal:
        out.append(Row("calib", "W_raw: bare ConfigMap creates, 32 in flight",
                       f"{_num(w_raw)} writes/s", "1.00 (basis)", "-", INFO))
        crd = details.get("create_custom_resource") or {}
        if crd:
            out.append(Row("calib", "bare Knative-Service-sized CR creates, 32 in flight",
                           f"{_num(crd.get('writes_per_s'))} writes/s",
                           f"{_num(crd.get('writes_per_s', 0) / w_raw, 2)} x W_raw"
                           if w_raw else "n/a", "-", INFO))
        out.append(Row("calib", "bare patch->own watch round trip (ConfigMap) p50 / p99",
                       f"{_num(rt50)} / {_num(rt99)} ms", "1.00 (basis)", "-", INFO))
        crt = details.get("round_trip_custom_resource_status") or {}
        if crt:
            out.append(Row("calib", "bare round trip, CR status subresource p50 / p99",
                           f"{_num(crt.get('p50_ms'))} / {_num(crt.get('p99_ms'))} ms",
                           f"{_num(crt['p50_ms'] / rt50, 2)} / {_num(crt['p99_ms'] / rt99, 2)}"
                           if _finite(rt50, rt99, crt.get("p50_ms"), crt.get("p99_ms"))
                           else "n/a", "-", INFO))

    b1 = results.get("B1")
    if b1:
        n = b1["n"]
        out.append(Row("B1", f"burst create N={n}: T_op (all ksvc + Service + observedGeneration)",
                       f"{_num(b1['t_op_s'], 2)} s"
                       + ("" if b1["complete"] else " (INCOMPLETE: timed out)"),
                       f"T_min = {_num(b1['t_min_s'], 2)} s",
                       "T_op <= 60 s (anchor at N=1000)",
                       _ok(b1["complete"] and b1["t_op_s"] <= 60)))
        out.append(Row("B1", "E1 = T_min / T_op (T_min = 4N writes / W_raw)",
                       _num(b1["e1"], 2), _num(b1["e1"], 2),
                       ">= 0.5 (stretch >= 0.8)", _ok(b1["complete"] and b1["e1"] >= 0.5)
                       + (" (stretch met)" if b1["complete"] and b1["e1"] >= 0.8 else "")))
        if b1.get("e1_cr") is not None:
            out.append(Row("B1", "E1 with W from bare CR creates (T_min_cr = 4N / W_cr)",
                           _num(b1["e1_cr"], 2), f"T_min_cr = {_num(b1['t_min_cr_s'], 2)} s",
                           ">= 0.5 (same goal, fairer floor)", INFO))
        out.append(Row("B1", "isvc create rate seen by the client (webhooks included)",
                       f"{_num(b1['isvc_create_rate_per_s'])} /s",
                       f"{_num(b1['isvc_create_rate_per_s'] / w_raw, 2)} x W_raw"
                       if w_raw else "n/a", "-", INFO))
        out.append(_latency_row("B1", "per-isvc create -> observedGeneration p50 / p99",
                                b1["per_isvc_latency"]["create_to_observed_generation"],
                                rt50, rt99))
        out += _write_rate_rows("B1", "operator write rate during B1 / mean writes in flight",
                                b1, w_raw,
                                f"- ({b1.get('operator_workers', '?')} reconcile workers)")
        out.append(Row("B1", "operator CPU per isvc (create burst, webhooks included)",
                       f"{_num(b1['operator_cpu_ms_per_isvc'])} ms", _cpu_ratio(b1, details),
                       "- (record)", INFO))
        out.append(Row("B1", "operator writes per isvc / write efficiency U",
                       f"{_num(b1['operator_writes_per_isvc'], 2)} / U="
                       f"{_num(b1['write_efficiency_u'], 2)}", "U = 3N / actual",
                       "<= 3 writes (B7), U = 1", _ok(b1["operator_writes_per_isvc"] <= 3.0)))

    b2 = results.get("B2")
    if b2:
        out.append(Row("B2", f"idle writes, {b2['isvcs']} isvcs, {_num(b2['seconds'], 0)} s",
                       f"{_num(b2['writes_per_min'], 2)} writes/min", "absolute",
                       "0 writes/min", _ok(b2["writes_per_min"] == 0)))
        if "operator_reads_per_min" in b2:
            out.append(Row("B2", "idle operator GET+LIST (audit log; watches excluded)",
                           f"{_num(b2['operator_reads_per_min'], 2)} reads/min",
                           _breakdown(b2["operator_reads"], 1) if b2["operator_reads"]
                           else "absolute",
                           "<= 1 LIST per type per reconnect (stretch 0 GETs)",
                           _ok(b2["operator_reads_per_min"] == 0)))
        others = b2.get("other_readers") or {}
        out.append(Row("B2", "idle GET+LIST on operator resources, all clients (metrics)",
                       f"{_num(b2['reads_per_min_all_clients'], 2)} reads/min",
                       "top readers: " + ", ".join(f"{k} {v}" for k, v in others.items())
                       if others else "-", "-", INFO))
        out.append(Row("B2", "operator CPU at idle",
                       f"{_num(b2['operator_cpu_s_per_min'] * 1000 / 60, 2)} ms/s", "-", "-",
                       INFO))

    out += _raw_rows(results.get("R1"), w_raw, rt50, rt99)

    b3 = results.get("B3")
    if b3:
        out.append(Row("B3", f"writes during restart over {b3['isvcs']} isvcs "
                       "(webhook config excluded)", str(b3["write_count"]), "absolute",
                       "0 writes", _ok(b3["write_count"] == 0)))
        out.append(Row("B3", "restart: stop / start -> webhooks registered",
                       f"{_num(b3['stop_s'], 2)} / {_num(b3['start_to_webhooks_registered_s'], 2)}"
                       " s", "-", "(a) all handled <= 30 s at 5000", INFO))
        reads = b3.get("operator_reads") or {}
        out.append(Row("B3", "operator reads during restart (GET+LIST, audit log)",
                       str(sum(reads.values())), _breakdown(reads, 1) if reads else "-",
                       "a LIST per type (no per-object GET)",
                       _ok(not any(key.split(" (")[0] in PER_OBJECT_GETS for key in reads))))
        latency = b3["new_isvc_after_restart"]["create_to_observed_generation_s"]
        out.append(Row("B3", "(c) new isvc right after restart: create -> observedGeneration",
                       f"{_num(latency * 1000)} ms",
                       f"{_num(latency * 1000 / rt50, 1)} x bare RT p50"
                       if _finite(latency, rt50) else "n/a",
                       "<= 5 s (stretch <= 1 s)",
                       _ok(_finite(latency) and latency <= 5)
                       + (" (stretch met)" if _finite(latency) and latency <= 1 else "")))

    b4 = results.get("B4")
    if b4:
        base, loaded = b4["baseline"], b4["loaded"]
        out.append(Row("B4", "RSS at 0 isvcs (after start)", f"{_num(base['rss_mib'])} MiB",
                       "-", "- (KServe limit 300Mi)", INFO))
        out.append(Row("B4", f"RSS / peak (VmHWM) at {loaded['isvcs']} isvcs, after B1",
                       f"{_num(loaded['rss_mib'])} / {_num(loaded['hwm_mib'])} MiB", "-",
                       "peak < 300 MiB", _ok(loaded["hwm_mib"] < 300)))
        after = b4.get("after_restart")
        if after:
            out.append(Row("B4", f"RSS / peak (VmHWM) after restart over {after['isvcs']} isvcs",
                           f"{_num(after['rss_mib'])} / {_num(after['hwm_mib'])} MiB", "-",
                           "peak < 300 MiB", _ok(after["hwm_mib"] < 300)))
        per = f"{_num(b4['kib_per_isvc'])} KiB"
        if "kib_per_isvc_after_restart" in b4:
            per += f" (after restart: {_num(b4['kib_per_isvc_after_restart'])} KiB)"
        out.append(Row("B4", "RSS per isvc", per, "vs ~11 KiB per parsed object (anchor)",
                       "-", INFO))
        projected = b4["projected_rss_mib_at_5000"]
        out.append(Row("B4", "projected RSS at 5000 isvcs (baseline + 5000 x per-isvc)",
                       f"{_num(projected)} MiB", "-", "<= 200 MiB (stretch <= 100 MiB)",
                       _ok(projected <= 200) + (" (stretch met)" if projected <= 100 else "")))

    for key, label, goal50, goal99 in (("B5_idle", "idle, one at a time", 100.0, 1000.0),
                                       ("B5_burst", "burst", None, 2000.0)):
        b5 = results.get(key)
        if not b5:
            continue
        hop = b5["ksvc_ready_to_isvc_ready"]
        goal = (f"p50 <= {goal50:.0f} ms, p99 <= {goal99:.0f} ms (stretch 30 / 250 ms)"
                if goal50 is not None else f"p99 <= {goal99:.0f} ms")
        met = b5["ready"] == b5["k"] and _finite(hop["p99_ms"]) and hop["p99_ms"] <= goal99 and (
            goal50 is None or hop["p50_ms"] <= goal50)
        stretch = goal50 is not None and met and hop["p50_ms"] <= 30 and hop["p99_ms"] <= 250
        out.append(Row("B5", f"ksvc Ready -> isvc Ready, {label}, K={b5['k']} p50 / p99",
                       f"{_num(hop['p50_ms'])} / {_num(hop['p99_ms'])} ms"
                       + ("" if b5["ready"] == b5["k"] else f" ({b5['ready']} ready)"),
                       f"{_num(hop['p50_ms'] / rt50, 1)} / {_num(hop['p99_ms'] / rt99, 1)}"
                       " x bare RT" if _finite(rt50, rt99, hop["p50_ms"]) else "n/a",
                       goal, _ok(met) + (" (stretch met)" if stretch else "")))
        if b5.get("e") is not None:
            out.append(Row("B5", f"burst: all {b5['k']} isvcs Ready after first patch",
                           f"{_num(b5['t_all_ready_s'], 2)} s",
                           f"E = T_min / T = {_num(b5['e'], 2)} (T_min = 4K / W_raw = "
                           f"{_num(b5['t_min_s'], 2)} s)", "-", INFO))

    b7 = results.get("B7") or {}
    create = b1.get("operator_writes_per_isvc") if b1 else None
    if b1 and create is not None:
        out.append(Row("B7", "writes per isvc: create", _num(create, 2),
                       _breakdown(b1["operator_writes"], b1["n"]),
                       "<= 3 (stretch = 3)", _ok(create <= 3)
                       + (" (stretch met)" if create == 3 else "")))
        reads = b1.get("operator_reads") or {}
        out.append(Row("B7", "operator non-watch reads per isvc: create",
                       _num(b1.get("operator_reads_per_isvc"), 2), _breakdown(reads, b1["n"]),
                       "0", _ok(not reads)))
        events = sum(v for k, v in b1["operator_writes"].items() if k.endswith(" events"))
        out.append(Row("B7", "Events posted per isvc on create", _num(events / b1["n"], 2),
                       "-", "only on Ready transitions (0 on create)", _ok(events == 0)))
    for key, label, goal, limit in (
            ("noop", "no-op (foreign ksvc label)", "0", 0.0),
            ("status_change", "child status change: first ksvc Ready",
             "1 status write (+ VS create and Ready Event, by design as KServe)", None),
            ("spec_change", "spec change (storageUri)", "<= 3 (B6: ksvc, VS, status)", 3.0),
            ("delete", "delete (children by GC)", "- (no goal; GC does it)", None)):
        item = b7.get(key)
        if not item:
            continue
        value = item["writes_per_isvc"]
        verdict = _ok(None if limit is None else value <= limit)
        if key == "status_change":
            status_writes = item["operator_writes"].get("patch inferenceservices/status", 0)
            verdict = _ok(status_writes <= item["k"])
        out.append(Row("B7", f"writes per isvc: {label}", _num(value, 2),
                       _breakdown(item["operator_writes"], item["k"]), goal, verdict))
    spec = b7.get("spec_change")
    if spec:
        lat = spec["patch_to_ksvc_updated"]
        out.append(Row("B7", "spec change: isvc patch -> ksvc updated p50 / p99",
                       f"{_num(lat['p50_ms'])} / {_num(lat['p99_ms'])} ms",
                       f"{_num(lat['p50_ms'] / rt50, 1)} / {_num(lat['p99_ms'] / rt99, 1)}"
                       " x bare RT" if _finite(rt50, rt99, lat["p50_ms"]) else "n/a",
                       "p99 <= 1 s (stretch 300 ms)", _ok(_finite(lat["p99_ms"])
                                                         and lat["p99_ms"] <= 1000)))

    b6 = results.get("B6")
    if b6:
        lat = b6["patch_to_ksvc_traffic_split"]
        met = lat["count"] == b6["k"] and _finite(lat["p99_ms"]) and lat["p99_ms"] <= 1000
        out.append(Row("B6", f"canary step ({b6['canary_percent']}%), K={b6['k']}: isvc patch "
                       "-> ksvc traffic split p50 / p99",
                       f"{_num(lat['p50_ms'])} / {_num(lat['p99_ms'])} ms"
                       + ("" if lat["count"] == b6["k"] else f" ({lat['count']} seen)"),
                       f"{_num(lat['p50_ms'] / rt50, 1)} / {_num(lat['p99_ms'] / rt99, 1)}"
                       " x bare RT" if _finite(rt50, rt99, lat["p50_ms"]) else "n/a",
                       "p99 <= 1 s (stretch 300 ms)",
                       _ok(met) + (" (stretch met)" if met and lat["p99_ms"] <= 300 else "")))
        per = b6["writes_per_update"]
        out.append(Row("B6", "writes per canary update", _num(per, 2),
                       _breakdown(b6["operator_writes"], b6["k"]),
                       "<= 3 (stretch 2)", _ok(per <= 3) + (" (stretch met)" if per <= 2
                                                            else "")))

    cfg = results.get("CFG")
    if cfg:
        same = sum(cfg["operator_writes_unchanged_config"].values())
        out.append(Row("CFG", "config re-applied unchanged: operator writes", str(same),
                       "absolute", "0", _ok(same == 0)))
        out.append(Row("CFG", f"new predictor image in the ConfigMap: all {cfg['isvcs']} ksvcs "
                       "carry it", f"{_num(cfg['t_all_updated_s'], 2)} s"
                       + ("" if cfg["complete"] else f" (INCOMPLETE: {cfg['updated']})"),
                       f"T_min = N / W_raw = {_num(cfg['t_min_s'], 2)} s; E = "
                       f"{_num(cfg['e'], 2)}", "<= 2 x T_min (E >= 0.5); 1000 in <= 30 s",
                       _ok(cfg["complete"] and cfg["e"] >= 0.5)))
        out.append(Row("CFG", "writes per isvc for the config change",
                       _num(cfg["writes_per_isvc"], 2),
                       _breakdown(cfg["operator_writes"], cfg["isvcs"]),
                       "only affected isvcs, 1 ksvc write each (+ status if it changes)",
                       _ok(cfg["writes_per_isvc"] <= 2)))
        out.append(Row("CFG", "operator CPU per isvc for the config change",
                       f"{_num(cfg['operator_cpu_ms_per_isvc'])} ms", "-", "-", INFO))
    return out


def _latency_row(bench: str, metric: str, lat: dict[str, float], rt50: float | None,
                 rt99: float | None) -> Row:
    """A p50 / p99 latency, in ms and in bare round trips."""
    return Row(bench, metric, f"{_num(lat['p50_ms'])} / {_num(lat['p99_ms'])} ms",
               f"{_num(lat['p50_ms'] / rt50, 1)} / {_num(lat['p99_ms'] / rt99, 1)} x bare RT"
               if rt50 and rt99 and _finite(rt50, rt99, lat["p50_ms"]) else "n/a", "-", INFO)


def _write_rate_rows(bench: str, metric: str, result: dict[str, Any], w_raw: float | None,
                     goal: str) -> list[Row]:
    """The operator's write rate and mean writes in flight, from the audit timestamps."""
    profile = result.get("operator_write_profile") or {}
    if not profile:
        return []
    return [Row(bench, metric, f"{_num(profile['writes_per_s'])} /s / "
                f"{_num(profile['mean_in_flight'], 1)}",
                f"{_num(profile['writes_per_s'] / w_raw, 2)} x W_raw" if w_raw else "n/a",
                goal, INFO)]


def _raw_rows(r1: dict[str, Any] | None, w_raw: float | None, rt50: float | None,
              rt99: float | None) -> list[Row]:
    """R1, raw deployment mode, beside the serverless B1/B2 rows (no goals of its own but B2's
    0 idle writes)."""
    if not r1:
        return []
    n = r1["n"]
    out = [Row("R1", f"raw burst create N={n}: all Deployments seen (time from first create)",
               f"{_num(r1['t_deployments_s'], 2)} s"
               + ("" if r1["complete"] else f" (INCOMPLETE: {r1['seen']})"),
               f"T_min = 6N / W_raw = {_num(r1['t_min_s'], 2)} s; E = {_num(r1['e'], 2)}",
               "- (beside B1 T_op)", INFO),
           Row("R1", "all Services / all observedGeneration / all ReplicaSets "
               "(kube-controller-manager, client-side rate limited)",
               f"{_num(r1.get('t_services_s'), 2)} / {_num(r1['t_observed_generation_s'], 2)}"
               f" / {_num(r1['t_replica_sets_s'], 2)} s", "-", "-", INFO)]
    out.append(_latency_row("R1", "per-isvc create -> Deployment p50 / p99",
                            r1["per_isvc_latency"]["create_to_deployment"], rt50, rt99))
    out += _write_rate_rows("R1", "operator write rate / mean writes in flight", r1, w_raw, "-")
    out.append(Row("R1", "operator writes per raw isvc: create",
                   _num(r1["operator_writes_per_isvc"], 2),
                   _breakdown(r1["operator_writes"], n),
                   "- (at least 5: Deployment, Service, HPA, Ingress, status)", INFO))
    out.append(Row("R1", "operator GET+LIST per raw isvc: create",
                   _num(r1["operator_reads_per_isvc"], 2),
                   _breakdown(r1["operator_reads"], n), "-", INFO))
    out.append(Row("R1", "operator CPU per raw isvc (pod webhook included) / RSS per isvc",
                   f"{_num(r1['operator_cpu_ms_per_isvc'])} ms / "
                   f"{_num(r1['kib_per_isvc'])} KiB", "-", "-", INFO))
    idle = r1["idle"]
    out.append(Row("R1", f"idle writes, {idle['isvcs']} isvcs ({n} raw), "
                   f"{_num(idle['seconds'], 0)} s",
                   f"{_num(idle['writes_per_min'], 2)} writes/min", "absolute",
                   "0 writes/min (as B2)", _ok(idle["writes_per_min"] == 0)))
    out.append(Row("R1", "idle operator GET+LIST (pods Pending: every Deployment incomplete)",
                   f"{_num(idle['operator_reads_per_min'], 1)} reads/min",
                   _breakdown(idle["operator_reads"], 1) if idle["operator_reads"] else "-",
                   "- (pods and ReplicaSets come from watches)", INFO))
    out.append(Row("R1", "operator CPU at idle",
                   f"{_num(idle['operator_cpu_s_per_min'] * 1000 / 60, 2)} ms/s", "-", "-",
                   INFO))
    return out


def _breakdown(writes: dict[str, int], items: int) -> str:
    if not writes:
        return "none"
    return ", ".join(f"{key} {value / items:.2f}" for key, value in writes.items())


def _cpu_ratio(b1: dict[str, Any], details: dict[str, Any]) -> str:
    create = details.get("create_configmap") or {}
    plane = create.get("plane_cpu_s")
    count = create.get("count")
    if not plane or not count:
        return "n/a"
    per_write_ms = plane / count * 1000
    return (f"{b1['operator_cpu_ms_per_isvc'] / per_write_ms:.1f} x control-plane CPU per "
            f"bare write ({per_write_ms:.2f} ms)")


def markdown(results: dict[str, Any]) -> str:
    meta = results.get("meta") or {}
    lines = [
        "# kfserving-operator benchmark results",
        "",
        f"- when: {meta.get('started', '?')}; machine: {meta.get('cpus', '?')} CPUs; "
        f"N = {meta.get('n', '?')}; concurrency {meta.get('concurrency', '?')}; "
        f"wall time {_num(meta.get('wall_s'), 0)} s",
        f"- command: `{meta.get('command', '')}`",
        "- ratios are against the bare client measured in the same run (see calibration rows);"
        " goals as in benchmarks/README.md.",
        "- operator requests come from the apiserver audit log (user `kfserving-operator`)."
        " The benchmark's control plane logs GET/LIST too (the project's policy logs writes"
        " only); watches are never logged. 'all clients' rows are `apiserver_request_total`"
        " deltas.",
        f"- product commit {meta.get('git', '?')}"
        + (" with uncommitted changes in kfserving_operator/"
           if meta.get("product_changes_uncommitted") else "") + ".",
        "",
        "| bench | metric | measured | ratio | goal | result |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows(results):
        lines.append(f"| {row.bench} | {row.metric} | {row.value} | {row.ratio} | {row.goal} "
                     f"| {row.result} |")
    problems = results.get("operator_log_problems") or []
    if problems:
        lines += ["", "## Operator log errors", "", "```", *problems, "```"]
    errors = results.get("errors") or []
    if errors:
        lines += ["", "## Benchmark errors", "", *[f"- {e}" for e in errors]]
    return "\n".join(lines) + "\n"
