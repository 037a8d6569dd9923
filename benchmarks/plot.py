"""The latency distributions of a result JSON as one PNG (needs the ``bench`` extra).

One panel per measured path, each an empirical CDF on a log time axis, with the bare
client's patch->watch round trip of the same run (p50) drawn as the floor: a curve close to
that line adds little to the API server's own latency.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# (result path, title, what the latency is from and to)
SERIES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("B1",), "B1 burst create", "isvc create -> status.observedGeneration"),
    (("B5_idle",), "B5 status, idle", "ksvc Ready -> isvc Ready"),
    (("B5_burst",), "B5 status, burst", "ksvc Ready -> isvc Ready"),
    (("B7", "spec_change"), "B7 spec change", "isvc patch -> ksvc updated"),
    (("B6",), "B6 canary step", "isvc patch -> ksvc traffic split"),
    (("CFG",), "Config change", "ConfigMap patch -> each ksvc has the new image"),
)


def _series(results: dict[str, Any], path: tuple[str, ...]) -> list[float]:
    node: Any = results
    for key in path:
        node = (node or {}).get(key)
    values = (node or {}).get("latencies_s") or []
    return sorted(v * 1000 for v in values if isinstance(v, int | float) and math.isfinite(v))


def latency_distributions(results: dict[str, Any], path: Path) -> Path:
    """Write the PNG; raises ImportError when matplotlib is not installed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    panels = [(title, label, values) for keys, title, label in SERIES
              if (values := _series(results, keys))]
    meta = results.get("meta") or {}
    rt = ((results.get("calibration") or {}).get("round_trip") or {}).get("p50_ms")
    columns = 3
    rows = max(1, math.ceil(len(panels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False)
    for index, axis in enumerate(axes.flat):
        if index >= len(panels):
            axis.set_visible(False)
            continue
        title, label, values = panels[index]
        count = len(values)
        axis.step(values, [(i + 1) / count for i in range(count)], where="post")
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(ticker.NullFormatter())
        axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_ylim(0, 1.02)
        axis.grid(True, which="both", alpha=0.3)
        p50 = values[(count - 1) // 2]
        p99 = values[min(count - 1, math.ceil(0.99 * count) - 1)]
        axis.set_title(f"{title} (n={count})\np50 {p50:.0f} ms, p99 {p99:.0f} ms",
                       fontsize=10)
        axis.set_xlabel(f"{label} [ms]", fontsize=8)
        axis.set_ylabel("fraction done")
        if rt:
            axis.axvline(rt, color="grey", linestyle="--", linewidth=1,
                         label=f"bare round trip p50 {rt:.1f} ms")
            axis.legend(fontsize=7, loc="lower right")
    figure.suptitle(f"kfserving-operator latencies, N={meta.get('n', '?')}, "
                    f"commit {meta.get('git', '?')}, {meta.get('started', '')}", fontsize=11)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
