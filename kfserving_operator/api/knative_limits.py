"""What Knative Serving refuses in a revision, checked at admission so that a user hears it
from ``kubectl apply`` and not later from a Knative Service's status.
"""

from __future__ import annotations

from typing import Final

from kfserving_operator.api.constants import (
    AUTOSCALING_MAX_SCALE_ANNOTATION,
    AUTOSCALING_MIN_SCALE_ANNOTATION,
    AUTOSCALING_TARGET_ANNOTATION,
    QUEUE_PROXY_CONTAINER_NAME,
)

# Limits Knative Serving applies to every revision (its defaults: config-defaults
# container-concurrency-max-limit and max-revision-timeout-seconds).
KNATIVE_MAX_CONTAINER_CONCURRENCY: Final = 1000
KNATIVE_MAX_TIMEOUT_SECONDS: Final = 600
INT32_MAX: Final = 2**31 - 1
# Ports the queue-proxy and Knative's metrics and profiling listen on in every pod.
KNATIVE_RESERVED_PORTS: Final = frozenset({8008, 8012, 8013, 8022, 9090, 9091})
KNATIVE_PORT_NAMES: Final = ("", "h2c", "http1")
KNATIVE_RESERVED_ENV: Final = ("PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION")
KNATIVE_RESERVED_CONTAINER_NAMES: Final = (QUEUE_PROXY_CONTAINER_NAME,)
# Numeric autoscaling annotations, copied from the InferenceService onto the revision:
# (least, greatest, integer only) as Knative checks them.
AUTOSCALING_BOUNDS: Final[dict[str, tuple[float, float, bool]]] = {
    AUTOSCALING_MIN_SCALE_ANNOTATION: (0, INT32_MAX, True),
    AUTOSCALING_MAX_SCALE_ANNOTATION: (0, INT32_MAX, True),
    "autoscaling.knative.dev/initial-scale": (0, INT32_MAX, True),
    AUTOSCALING_TARGET_ANNOTATION: (0.01, float("inf"), False),
    "autoscaling.knative.dev/target-utilization-percentage": (1, 100, False),
    "autoscaling.knative.dev/panic-window-percentage": (1, 100, False),
    "autoscaling.knative.dev/panic-threshold-percentage": (110, 1000, False),
}
