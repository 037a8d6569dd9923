"""hack/build-tools.sh under concurrent runs: one build per tool, every run succeeds.

Two runs race on the smallest tool the script builds (``probe``, one Go file) in an empty
cache of their own. The test holds the tool's lock while both start, so both are sure to
overlap (each says it waits); once it lets go, exactly one of them builds and the other finds
the tool cached.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kfserving_operator.cluster.localplane import project_root

SCRIPT = project_root() / "hack" / "build-tools.sh"


def _start(cache: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "KFSERVING_TOOLS_CACHE": str(cache)}
    return subprocess.Popen(["bash", str(SCRIPT), "probe"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.timeout(60)
def test_two_runs_build_one_tool_once(tmp_path: Path) -> None:
    if shutil.which("go") is None:
        pytest.skip("needs Go, as every tool build does")
    cache = tmp_path / "tools"
    lock = cache / ".locks" / "probe.lock"
    lock.parent.mkdir(parents=True)
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        runs = [_start(cache), _start(cache)]
        # Each run's first line says it waits for the lock (the timeout above guards this).
        first = [run.stdout.readline() if run.stdout else "" for run in runs]
        assert first == ["probe: another run of this script holds it; waiting\n"] * 2, first
    outputs = [line + run.communicate(timeout=50)[0] for line, run in zip(first, runs, strict=True)]
    assert [run.returncode for run in runs] == [0, 0], outputs
    both = "".join(outputs)
    assert both.count("probe: another run of this script holds it; waiting") == 2, outputs
    assert both.count("probe: building") == 1, outputs
    assert both.count("probe: cached in") == 1, outputs
    binary = cache / "probe" / "v1" / "probe"
    assert subprocess.run([str(binary)], capture_output=True, text=True,
                          check=True).stdout == "probe v1\n"
    # Nothing half-built is left beside the tool.
    assert sorted(p.name for p in binary.parent.parent.iterdir()) == ["v1"]
