"""The published KFServing 0.6.1 Python SDK, installed in a virtualenv of its own.

``make sdk-venv`` (and the first test that needs it) creates ``.cache/venv-kfserving-sdk``;
it is reused while this file is unchanged. Tests drive the SDK through
``tests/support/sdk_driver.py``, run by that venv's Python, so the SDK's old ``kubernetes``
client never meets the test venv's.

What the SDK really needs on Python 3.11: ``kfserving==0.6.1`` declares the dependencies of
its model server too (ray[serve] 1.x, tornado, cloudevents, boto3, google-cloud-storage,
azure-storage-blob 2.x, minio, avro, grpcio, adal, ...). No ray release that installs on
Python 3.11 still has the ``ray.serve`` API that ``kfserving/__init__.py`` imports, so the
full install cannot work there at all, and pip backtracks for over 20 minutes trying. The
client half (``KFServingClient``, the models, ``set_credentials``, the watch table) imports
only: ``kubernetes`` (bounded above, see SDK_DEPENDENCIES), ``table-logger``, ``psutil`` and
``numpy`` (``kfserving.utils``), ``requests``, ``six``, ``python-dateutil``, ``urllib3``. So the
package goes in with ``--no-deps``, and those go in by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]
SDK_VENV = Path(os.environ.get("KFSERVING_SDK_VENV", ROOT / ".cache" / "venv-kfserving-sdk"))
DRIVER = Path(__file__).with_name("sdk_driver.py")

SDK_PACKAGES = ["kfserving==0.6.1"]
# kubernetes: the SDK was written against client 12; 29 is the newest that these tests show
# working with it, and without an upper bound pip backtracks through every release.
SDK_DEPENDENCIES = [
    "kubernetes>=12,<30",
    "table-logger>=0.3.5",
    "psutil>=5",
    "numpy>=1.23.2,<1.24",  # kfserving.utils uses np.float (gone in 1.24); 1.23.2: cp311 wheels
    "requests>=2",
    "six>=1.15",
    "python-dateutil>=2.5.3",
    "urllib3>=1.26",
]


def _stamp() -> Path:
    key = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    return SDK_VENV / f".installed-{key}"


def ensure_sdk_venv() -> Path:
    """The SDK venv's Python, creating the venv when missing or out of date."""
    python = SDK_VENV / "bin" / "python"
    if _stamp().exists():
        return python
    subprocess.run(["rm", "-rf", str(SDK_VENV)], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(SDK_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", *SDK_PACKAGES], check=True)
    subprocess.run([*pip, *SDK_DEPENDENCIES], check=True)
    _stamp().touch()
    return python


class SdkError(RuntimeError):
    """An SDK call that raised; ``kind`` is the exception's class name."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def sdk_command(cluster: Cluster, operation: str, **arguments: Any) -> list[str]:
    """The command line that runs one SDK operation (for calls that must run alongside).

    It runs where the cluster is reachable (inside the Knative lane's network namespace).
    """
    # -I: the driver's own directory must not shadow the standard library (operator.py).
    return [*cluster.prefix, str(ensure_sdk_venv()), "-I", str(DRIVER), cluster.kubeconfig,
            operation, json.dumps(arguments)]


def sdk_call(cluster: Cluster, operation: str, timeout: float = 120, **arguments: Any) -> Any:
    """Run one SDK operation (see sdk_driver.py) and return its JSON result."""
    result = subprocess.run(sdk_command(cluster, operation, **arguments),
                            capture_output=True, text=True, timeout=timeout, check=False)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise SdkError("DriverFailed", f"exit {result.returncode}\n{result.stdout}\n"
                                       f"{result.stderr[-3000:]}")
    outcome = json.loads(lines[-1])
    if "error" in outcome:
        raise SdkError(outcome["error"], outcome["message"])
    return outcome["result"]


if __name__ == "__main__":
    print(ensure_sdk_venv())
