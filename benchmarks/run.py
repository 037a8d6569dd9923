"""Run the benchmarks: own control plane, calibration, operator, B1-B7, report.

    .venv/bin/python benchmarks/run.py [--n 200] [--only B1,B2,...] [--out FILE]

Everything runs on a control plane started here, in a temporary state directory (never the
test cluster or the ``make run`` one), and everything started here is stopped at the end,
also on errors and on SIGINT/SIGTERM. See benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import datetime
import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from importlib import metadata
from types import FrameType
from typing import Any

from benchmarks import kube, plot, report, scenarios
from benchmarks.scenarios import (
    BENCH_NAMESPACE,
    CALIBRATION_NAMESPACE,
    Calibration,
    Context,
    Options,
)
from kfserving_operator.cluster.localplane import LocalControlPlane, find_tool
from tests.support.cluster import Cluster, install_crds
from tests.support.operator import OperatorProcess, run_operator

ROOT = Path(__file__).resolve().parents[1]
ALL = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "CFG", "R1")
SERVICE_RANGE = "--service-cluster-ip-range=10.0.0.0/16"


class BenchControlPlane(LocalControlPlane):
    """The project's loopback control plane, with an audit policy that also logs reads and a
    Service IP range for thousands of ClusterIP Services.

    The project's policy logs writes only; the benchmark also wants the operator's GETs and
    LISTs (watches stay unlogged), attributed by user: it runs with ``audit_reads=True``.
    """

    def _apiserver_args(self, pki: Path, etcd_url: str, port: int) -> list[str]:
        # R1's raw InferenceServices each need a ClusterIP Service: the project's /24 holds
        # 254, so the benchmark's plane gets a /16 (same first address, which the serving
        # certificate names).
        return [SERVICE_RANGE if arg.startswith("--service-cluster-ip-range=") else arg
                for arg in super()._apiserver_args(pki, etcd_url, port)]



def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="InferenceServices in B1 (1000)")
    parser.add_argument("--only", default=",".join(ALL),
                        help="comma-separated subset of B1,B2,B3,B4,B5,B6,B7,CFG,R1 (B1 always "
                             "runs: the others need its objects)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/latest.json")
    parser.add_argument("--md", type=Path, default=None,
                        help="markdown table (default: --out with .md)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--idle", type=float, default=60.0, help="B2 idle seconds (60)")
    parser.add_argument("--k", type=int, default=50, help="B5 idle sample size (50)")
    parser.add_argument("--k-burst", type=int, default=100, help="B5 burst size (100)")
    parser.add_argument("--m", type=int, default=50, help="B7 no-op/spec/delete size (50)")
    parser.add_argument("--canary", type=int, default=100, help="B6 canary updates (100)")
    parser.add_argument("--plot", type=Path, default=None,
                        help="latency distribution PNG (default: --out with .png; needs the "
                             "'bench' extra, matplotlib)")
    parser.add_argument("--calibration-objects", type=int, default=1000)
    parser.add_argument("--round-trip-samples", type=int, default=200)
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary state dir (logs, audit log) for inspection")
    parser.add_argument("--render", type=Path, default=None,
                        help="only re-render the markdown of an existing result JSON")
    return parser.parse_args(argv)


def _clean(value: Any) -> Any:
    """NaN/inf to None, so the JSON is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return "?"


def _product_dirty() -> bool:
    """True when kfserving_operator/ differs from the commit (others edit the checkout)."""
    try:
        result = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--",
                                 "kfserving_operator"], capture_output=True, timeout=10)
    except OSError:
        return False
    return result.returncode != 0


GC_RESYNC_SECONDS = 30.0


def _wait_for_garbage_collector(crds_installed: float) -> None:
    """Let kube-controller-manager's garbage collector notice the new CRDs first.

    The GC re-reads discovery every 30 s. Children created before it knows
    InferenceService get "virtual" owner nodes that it later verifies with one GET per
    owner, at ~10/s: hundreds of GETs that would land in B2's idle window and look like
    load, while they are an artefact of installing CRDs right before the benchmark.
    """
    remaining = crds_installed + GC_RESYNC_SECONDS + 3.0 - time.monotonic()
    if remaining > 0:
        print(f"[bench] waiting {remaining:.0f} s for the garbage collector to see the CRDs",
              flush=True)
        time.sleep(remaining)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


async def _calibrate(kubeconfig: str, options: Options, plane_pids: list[int]) -> Calibration:
    client = kube.new_client(kubeconfig)
    try:
        return await scenarios.calibrate(client, options, plane_pids)
    finally:
        await client.close()


async def _guarded(target: dict[str, Any], key: str,
                   step: Callable[[], Awaitable[dict[str, Any]]], errors: list[str]) -> None:
    """Run one benchmark; a failure is recorded and the next benchmark still runs."""
    started = time.perf_counter()
    print(f"[bench] {key} ...", flush=True)
    try:
        target[key] = await step()
    except Exception:
        errors.append(f"{key}: {traceback.format_exc()}")
        print(f"[bench] {key} FAILED:\n{traceback.format_exc()}", flush=True)
    else:
        print(f"[bench] {key} done in {time.perf_counter() - started:.1f} s", flush=True)


async def _benchmarks(ctx: Context, results: dict[str, Any]) -> None:
    options = ctx.options
    only = options.only
    errors: list[str] = results["errors"]
    await ctx.tracker.start()
    await asyncio.sleep(2.0)
    baseline = scenarios.b4_snapshot(ctx, "after start")

    await _guarded(results, "B1", lambda: scenarios.b1_burst_create(ctx), errors)
    loaded = scenarios.b4_snapshot(ctx, "after B1")
    if "B2" in only:
        await _guarded(results, "B2", lambda: scenarios.b2_idle(ctx), errors)

    names = ctx.names
    k, kb, m = options.k_status, options.k_burst, options.m_changes
    idle_set = names[:k]
    burst_set = names[k:k + kb]
    spec_set = names[k + kb:k + kb + m]
    noop_set = names[:m]
    delete_set = names[-m:]
    # Fresh InferenceServices (generation 1, never made Ready), clear of the delete set.
    canary_set = names[k + kb + m:max(k + kb + m, min(len(names) - m,
                                                         k + kb + m + options.canary))]
    b7: dict[str, Any] = {}
    if "B7" in only:
        await _guarded(b7, "noop", lambda: scenarios.b7_noop(ctx, noop_set), errors)
    if "B5" in only:
        await _guarded(results, "B5_idle", lambda: scenarios.b5_status_idle(ctx, idle_set), errors)
        if burst_set:
            await _guarded(results, "B5_burst",
                           lambda: scenarios.b5_status_burst(ctx, burst_set), errors)
        if "B5_idle" in results:
            b7["status_change"] = {key: results["B5_idle"][key]
                                   for key in ("k", "operator_writes", "writes_per_isvc")}
    if "B7" in only and spec_set:
        await _guarded(b7, "spec_change", lambda: scenarios.b7_spec_change(ctx, spec_set), errors)
    if "B6" in only and canary_set:
        await _guarded(results, "B6", lambda: scenarios.b6_canary(ctx, canary_set), errors)
    if "CFG" in only:
        await _guarded(results, "CFG", lambda: scenarios.config_change(ctx), errors)
    after_restart = None
    if "B3" in only:
        await _guarded(results, "B3", lambda: scenarios.b3_restart(ctx), errors)
        await asyncio.sleep(2.0)
        after_restart = scenarios.b4_snapshot(ctx, "after restart")
    if "B7" in only:
        await _guarded(b7, "delete", lambda: scenarios.b7_delete(ctx, delete_set), errors)
    if b7:
        results["B7"] = b7
    if "R1" in only:  # last: the serverless figures above are measured without raw objects
        await _guarded(results, "R1", lambda: scenarios.r1_raw(ctx), errors)
    if "B4" in only:
        results["B4"] = scenarios.b4_summary(baseline, loaded, after_restart)
    await ctx.tracker.stop()


async def _run_with_operator(options: Options, cluster: Cluster, operator: OperatorProcess,
                             metrics: kube.ApiServerMetrics, calibration: Calibration,
                             plane_pids: list[int], results: dict[str, Any]) -> None:
    client = kube.new_client(cluster.kubeconfig)
    tracker = kube.Tracker(client, BENCH_NAMESPACE, ("isvc", "ksvc", "service"))
    ctx = Context(options, cluster, operator, client, tracker, metrics, calibration, plane_pids,
                  names=[f"m{i:05d}" for i in range(options.n)])
    try:
        await _benchmarks(ctx, results)
    finally:
        await tracker.stop()
        await client.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    only = frozenset(x.strip().upper() for x in args.only.split(",") if x.strip())
    unknown = only - set(ALL)
    if unknown:
        raise SystemExit(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    options = Options(n=args.n, concurrency=args.concurrency, idle_seconds=args.idle,
                      k_status=args.k, k_burst=args.k_burst, m_changes=args.m,
                      canary=args.canary,
                      calibration_objects=args.calibration_objects,
                      round_trip_samples=args.round_trip_samples, only=only | {"B1"})
    results: dict[str, Any] = {
        "meta": {"started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                 "n": args.n, "concurrency": args.concurrency, "cpus": os.cpu_count(),
                 "only": sorted(options.only), "git": _git_commit(),
                 "product_changes_uncommitted": _product_dirty(),
                 "command": " ".join([".venv/bin/python", "benchmarks/run.py", *sys.argv[1:]]),
                 "kopf": _version("kopf"), "lightkube": _version("lightkube"),
                 "python": sys.version.split()[0]},
        "errors": [],
    }
    wall = time.perf_counter()
    state_dir = Path(tempfile.mkdtemp(prefix="kfserving-bench-"))
    plane = BenchControlPlane(state_dir / "cluster", audit_reads=True)
    print(f"[bench] state dir {state_dir}", flush=True)
    try:
        state = plane.up()
        cluster = Cluster(state.kubeconfig, find_tool("kubectl"), state)
        install_crds(cluster)
        crds_installed = time.monotonic()
        for namespace in (BENCH_NAMESPACE, CALIBRATION_NAMESPACE, scenarios.CONFIG_NAMESPACE,
                          scenarios.RAW_NAMESPACE):
            cluster.kubectl("create", "namespace", namespace)
        # The operator's ConfigMap, as an install has it: without it the operator reports it
        # missing (a Warning event) at every start, which B3 would count as a restart write.
        cluster.apply_yaml(scenarios.default_config_map())
        plane_pids = list(state.pids.values())
        print("[bench] calibration ...", flush=True)
        calibration = asyncio.run(_calibrate(state.kubeconfig, options, plane_pids))
        results["calibration"] = {"writes_per_s": calibration.writes_per_s,
                                  "round_trip": calibration.round_trip,
                                  "details": calibration.details}
        print(f"[bench] W_raw {calibration.writes_per_s:.0f}/s, round trip "
              f"p50 {calibration.round_trip['p50_ms']:.1f} ms", flush=True)
        operator_dir = state_dir / "operator"
        operator_dir.mkdir()
        _wait_for_garbage_collector(crds_installed)
        with run_operator(cluster, operator_dir) as operator:
            log_offset = operator.log_path.stat().st_size
            metrics = kube.ApiServerMetrics(Path(state.state_dir), state.apiserver_url)
            asyncio.run(_run_with_operator(options, cluster, operator, metrics, calibration,
                                           plane_pids, results))
            results["operator_log_problems"] = scenarios.operator_log_problems(
                operator.log_path, log_offset)
            results["meta"]["operator_log"] = str(operator.log_path)
    except BaseException as exc:
        results["errors"].append(f"aborted: {traceback.format_exc()}")
        if not isinstance(exc, Exception):
            print("[bench] interrupted; cleaning up", flush=True)
    finally:
        stopped = plane.down()
        print(f"[bench] control plane stopped: {', '.join(stopped) or 'nothing running'}",
              flush=True)
        results["meta"]["wall_s"] = time.perf_counter() - wall
        results["meta"]["state_dir"] = str(state_dir) if args.keep else "(removed)"
        if not args.keep:
            shutil.rmtree(state_dir, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    md_path = args.md
    if args.render is not None:
        results = json.loads(args.render.read_text())
        md_path = md_path or args.render.with_suffix(".md")
    else:
        signal.signal(signal.SIGTERM, _terminate)
        results = _clean(run(args))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(f"[bench] wrote {args.out}", flush=True)
        md_path = md_path or args.out.with_suffix(".md")
    text = report.markdown(results)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(text)
    print(text, flush=True)
    print(f"[bench] wrote {md_path}", flush=True)
    png_path = args.plot or md_path.with_suffix(".png")
    try:
        plot.latency_distributions(results, png_path)
    except ImportError:
        print("[bench] no plot: matplotlib is missing (pip install -e '.[bench]')", flush=True)
    else:
        print(f"[bench] wrote {png_path}", flush=True)
    return 1 if results.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
