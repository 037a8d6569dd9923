"""What the lane's real node costs on this machine: start time, idle memory, cost per model.

    .venv/bin/python benchmarks/node_costs.py [--models 3] [--out benchmarks/results/node.json]

Starts a lane of its own (``cluster up --knative`` in a temporary state directory) and the
operator (as ``make run`` does), then measures:

- the lane's start: the real node's own start and the whole ``cluster up``;
- memory at idle: the resident memory of the node (kubelet, containerd) and of every
  process the lane started, with no model deployed;
- per model: N sklearn InferenceServices from ``examples/local/sklearn.yaml`` (renamed),
  each time from ``kubectl apply`` to Ready and to the first answered prediction, and the
  memory each model's pod holds (its memory cgroup: the model server, queue-proxy, the
  pause container; the page cache of its image files included);
- the first request after scale to zero is measured by the e2e tier
  (tests/e2e/test_predictions.py prints it), not here.

Figures are absolute: the node is a real kubelet, so there is no bare client to compare
with; rerun on a quiet machine to compare runs. Nothing here is a test: no goal is checked.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "kfserving_operator"]


def rss_mib(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


def tree_rss_mib(pid: int) -> float:
    """A process and its descendants (containerd's shims are its children)."""
    total = rss_mib(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            total += tree_rss_mib(int(child))
    return total


def pod_cgroup_mib(cgroup_root: str, pod_uid: str) -> float:
    base = Path("/sys/fs/cgroup/memory") / cgroup_root.lstrip("/") / "kubepods"
    for qos in ("", "burstable", "besteffort"):
        path = base / qos / f"pod{pod_uid}" / "memory.usage_in_bytes"
        if path.exists():
            return int(path.read_text()) / 2**20
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "node.json"))
    args = parser.parse_args()
    state_dir = Path(tempfile.mkdtemp(prefix="kfserving-node-costs-"))
    env = {**os.environ, "KFSERVING_CLUSTER_DIR": str(state_dir)}
    exec_ = [*CLI, "cluster", "exec", "--state-dir", str(state_dir), "--"]
    result: dict[str, Any] = {}
    operator = None
    try:
        started = time.monotonic()
        up = subprocess.run([*CLI, "cluster", "up", "--knative", "--state-dir", str(state_dir)],
                            capture_output=True, text=True, check=True)
        result["cluster_up_seconds"] = round(time.monotonic() - started, 1)
        node_line = next(line for line in up.stdout.splitlines() if "real node" in line)
        result["node_start_seconds"] = float(re.findall(r"([\d.]+)s$", node_line)[0])
        # Its own session: stopping it stops the operator it runs, too.
        operator = subprocess.Popen([sys.executable, "-m", "kfserving_operator.devrun"],
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, start_new_session=True)
        assert operator.stdout is not None
        for line in operator.stdout:
            if "ready: cache primed" in line:
                break
        time.sleep(20)  # the lane's own probe service is gone; the node is idle
        state = json.loads((state_dir / "state.json").read_text())
        pids: dict[str, int] = state["pids"]
        node_mib = rss_mib(pids["kubelet"]) + tree_rss_mib(pids["containerd"])
        result["idle_node_mib"] = round(node_mib, 1)
        result["idle_lane_mib"] = round(sum(tree_rss_mib(pid) for pid in pids.values()), 1)
        manifest = (ROOT / "examples" / "local" / "sklearn.yaml").read_text()
        per_model = []
        for index in range(args.models):
            name = f"sklearn-cost-{index}"
            applied = time.monotonic()
            subprocess.run([*exec_, "kubectl", "apply", "-f", "-"], check=True, text=True,
                           input=manifest.replace("name: sklearn-iris", f"name: {name}"),
                           capture_output=True)
            subprocess.run([*exec_, "kubectl", "wait", "--for=condition=Ready",
                            f"isvc/{name}", "--timeout=600s"], check=True, capture_output=True)
            ready = time.monotonic() - applied
            answer = subprocess.run(
                [*CLI, "cluster", "predict", name, "--state-dir", str(state_dir),
                 "--data", str(ROOT / "examples" / "local" / "iris-input.json")],
                capture_output=True, text=True, check=True).stdout.strip()
            answered = time.monotonic() - applied
            pods = json.loads(subprocess.run(
                [*exec_, "kubectl", "get", "pods", "-l",
                 f"serving.kubeflow.org/inferenceservice={name}", "-o", "json"],
                capture_output=True, text=True, check=True).stdout)["items"]
            memory = sum(pod_cgroup_mib(state["node_cgroup_root"], pod["metadata"]["uid"])
                         for pod in pods)
            per_model.append({"name": name, "apply_to_ready_seconds": round(ready, 1),
                              "apply_to_answer_seconds": round(answered, 1),
                              "pod_memory_mib": round(memory, 1), "answer": answer})
        result["models"] = per_model
        result["node_with_models_mib"] = round(
            rss_mib(pids["kubelet"]) + tree_rss_mib(pids["containerd"]), 1)
    finally:
        if operator is not None:
            os.killpg(operator.pid, signal.SIGTERM)
            operator.wait(timeout=60)
        subprocess.run([*CLI, "cluster", "down", "--state-dir", str(state_dir)],
                       capture_output=True, check=False)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
