"""A small transformer for the iris examples, on the ``kserve`` package.

It accepts the v1 protocol with named features, ``{"instances": [{"sepal_length": 6.8,
"sepal_width": 2.8, "petal_length": 4.8, "petal_width": 1.4}, ...]}``, turns each into the
feature vector the predictor expects, and forwards ``{"instances": [[...], ...]}`` to the
predictor that KFServing names in ``--predictor_host``. Lists pass through unchanged, so
the plain iris request works through it too. Responses gain nothing; the predictor's
``{"predictions": [...]}`` comes back as it is.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import kserve
from kserve.model import PredictorConfig
from model_servers import instances_of

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def to_vector(instance: Any) -> list[float]:
    """One instance as the predictor's feature vector."""
    if isinstance(instance, dict):
        missing = [name for name in FEATURES if name not in instance]
        if missing:
            raise ValueError(f"instance lacks {', '.join(missing)}")
        return [float(instance[name]) for name in FEATURES]
    return [float(value) for value in instance]


class IrisTransformer(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str, predictor_host: str, protocol: str) -> None:
        super().__init__(name, PredictorConfig(predictor_host, protocol))
        self.ready = True

    def preprocess(self, payload: dict[str, Any], headers: dict[str, str] | None = None
                   ) -> dict[str, Any]:
        return {"instances": [to_vector(item) for item in instances_of(payload)]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    args, _ = parser.parse_known_args(argv)
    if not args.predictor_host:
        print("transformer: --predictor_host is required", file=sys.stderr)
        return 2
    model = IrisTransformer(args.model_name, args.predictor_host, args.protocol)
    kserve.ModelServer().start([model])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
