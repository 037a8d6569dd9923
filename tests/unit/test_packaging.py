"""The image's lock file agrees with pyproject.toml (``make lock`` regenerates it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)")


def _locked() -> dict[str, tuple[Version, int]]:
    """name -> (pinned version, number of hashes) from requirements.lock."""
    pins: dict[str, tuple[Version, int]] = {}
    current = None
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            pins[current] = (Version(match.group(2)), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def test_every_runtime_dependency_is_pinned_with_hashes_within_its_bounds() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [Requirement(r) for r in pyproject["project"]["dependencies"]]
    wanted += [Requirement(r) for r in pyproject["build-system"]["requires"]]
    pins = _locked()
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is missing from requirements.lock: run `make lock`"
        version, _ = pins[name]
        assert requirement.specifier.contains(version), (
            f"requirements.lock pins {name}=={version}, outside {requirement}: run `make lock`")
    unhashed = [name for name, (_, hashes) in pins.items() if hashes == 0]
    assert not unhashed, f"pins without hashes: {unhashed}"


def test_dockerfile_installs_only_from_the_lock() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes" in dockerfile
    assert "pip install --no-deps --no-build-isolation /tmp/src" in dockerfile
    assert "requirements.lock" in (ROOT / ".dockerignore").read_text()
