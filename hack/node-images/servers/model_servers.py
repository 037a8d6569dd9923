"""The lane's v1 model servers, on the ``kserve`` package's ``Model`` and ``ModelServer``.

KFServing's sklearn and xgboost servers take ``--model_name``, ``--model_dir`` and
``--http_port`` (the operator writes them) and answer the v1 protocol:
``POST /v1/models/<name>:predict`` with ``{"instances": [...]}`` returns
``{"predictions": [...]}``. One module serves both frameworks; the image's entrypoint picks
one with ``--framework``.

The model file is looked for in ``--model_dir`` (where the storage initializer put it):
``model.joblib``/``model.pkl`` for sklearn, ``model.bst``/``model.json``/``model.ubj`` for
xgboost. A directory with no model file, or one that cannot be loaded, makes the server exit
with status 1 and the reason, so the pod's crash says why.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import kserve
import numpy as np

MODEL_FILES = {
    "sklearn": ("model.joblib", "model.pkl", "model.pickle"),
    "xgboost": ("model.bst", "model.json", "model.ubj"),
}


class ModelNotFound(RuntimeError):
    """The model directory holds no file this server can load."""


def find_model_file(model_dir: Path, framework: str) -> Path:
    """The first known model file name present in ``model_dir``."""
    for name in MODEL_FILES[framework]:
        candidate = model_dir / name
        if candidate.is_file():
            return candidate
    present = sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else []
    raise ModelNotFound(f"no {framework} model in {model_dir} (looked for "
                        f"{', '.join(MODEL_FILES[framework])}; found {present or 'nothing'})")


def instances_of(payload: Any) -> list[Any]:
    """The v1 request's ``instances``, whether the body arrived parsed or as bytes (a
    client that sends no JSON content type gets the same answer)."""
    if isinstance(payload, (bytes, str)):
        payload = json.loads(payload)
    if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
        raise ValueError('expected a v1 request: {"instances": [...]}')
    return payload["instances"]


class FrameworkModel(kserve.Model):  # type: ignore[misc]
    """A scikit-learn estimator or an xgboost Booster behind the v1 predict call."""

    def __init__(self, name: str, model_dir: str, framework: str) -> None:
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.framework = framework
        self._model: Any = None

    def load(self) -> bool:
        path = find_model_file(self.model_dir, self.framework)
        if self.framework == "sklearn":
            import joblib

            self._model = joblib.load(path)
        else:
            import xgboost

            booster = xgboost.Booster()
            booster.load_model(str(path))
            self._model = booster
        self.ready = True
        return True

    def predict(self, payload: dict[str, Any], headers: dict[str, str] | None = None
                ) -> dict[str, Any]:
        instances = np.asarray(instances_of(payload))
        if self.framework == "sklearn":
            result = self._model.predict(instances)
        else:
            import xgboost

            result = self._model.predict(xgboost.DMatrix(instances))
        return {"predictions": result.tolist()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--framework", choices=sorted(MODEL_FILES), required=True)
    parser.add_argument("--model_dir", required=True, help="where the model file is")
    parser.add_argument("--nthread", type=int, default=1, help="xgboost threads (accepted)")
    args, _ = parser.parse_known_args(argv)
    model = FrameworkModel(args.model_name, args.model_dir, args.framework)
    try:
        model.load()
    except Exception as exc:  # noqa: BLE001 - the pod's crash reason
        print(f"model server: cannot load the model: {exc}", file=sys.stderr)
        return 1
    kserve.ModelServer().start([model])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
