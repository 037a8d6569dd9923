"""Run one call of the published KFServing 0.6.1 SDK, the way a user's script makes it.

Executed by the SDK venv's Python (see sdk.py), not by the test venv:

    python sdk_driver.py KUBECONFIG OPERATION '{"name": ..., "namespace": ...}'

Whatever the SDK prints (the watch table of ``get(watch=True)``) goes to stdout; the last line
is JSON: ``{"result": ...}`` or ``{"error": "<exception class>", "message": ...}``.

``kfserving/__init__.py`` also imports the SDK's model server (ray.serve 1.x, tornado, the
storage backends), which cannot be installed on Python 3.11 (see sdk.py). The package is
therefore entered without running that file: the ``kfserving`` package object is created with
the installed directory as its path, and the client modules, the same files users import, load
from there unchanged.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from typing import Any


def _load_sdk() -> types.ModuleType:
    spec = importlib.util.find_spec("kfserving")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("kfserving is not installed in this venv")
    package = types.ModuleType("kfserving")
    package.__path__ = list(spec.submodule_search_locations)
    package.__file__ = spec.origin
    sys.modules["kfserving"] = package
    import kfserving.api.kf_serving_client
    import kfserving.constants.constants
    import kfserving.models  # noqa: F401

    return package


def _isvc(kfserving: Any, name: str, namespace: str, storage_uri: str,
          service_account: str | None = None, canary_percent: int | None = None) -> Any:
    from kubernetes import client as k8s

    constants = kfserving.constants.constants
    models = kfserving.models
    predictor = models.V1beta1PredictorSpec(
        service_account_name=service_account,
        canary_traffic_percent=canary_percent,
        sklearn=models.V1beta1SKLearnSpec(storage_uri=storage_uri),
    )
    return models.V1beta1InferenceService(
        api_version=constants.KFSERVING_GROUP + "/" + constants.KFSERVING_V1BETA1_VERSION,
        kind=constants.KFSERVING_KIND,
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace),
        spec=models.V1beta1InferenceServiceSpec(predictor=predictor),
    )


def run(kubeconfig: str, operation: str, args: dict[str, Any]) -> Any:
    kfserving = _load_sdk()
    sdk = kfserving.api.kf_serving_client.KFServingClient(config_file=kubeconfig)
    name, namespace = args.get("name"), args["namespace"]
    if operation == "set_credentials":
        sdk.set_credentials(storage_type=args["storage_type"], namespace=namespace,
                            credentials_file=args["credentials_file"],
                            service_account=args["service_account"], **args.get("extra", {}))
        return None
    if operation == "create":
        isvc = _isvc(kfserving, name, namespace, args["storage_uri"], args.get("service_account"))
        return sdk.create(isvc, namespace=namespace)
    if operation == "get":
        return sdk.get(name, namespace=namespace, watch=args.get("watch", False),
                       timeout_seconds=args.get("timeout_seconds", 120))
    if operation == "is_isvc_ready":
        return sdk.is_isvc_ready(name, namespace=namespace)
    if operation == "wait_isvc_ready":
        sdk.wait_isvc_ready(name, namespace=namespace, timeout_seconds=args["timeout_seconds"],
                            polling_interval=args.get("polling_interval", 1))
        return True
    if operation == "patch":
        isvc = _isvc(kfserving, name, namespace, args["storage_uri"], args.get("service_account"),
                     canary_percent=args["canary_percent"])
        return sdk.patch(name, isvc, namespace=namespace)
    if operation == "replace":
        isvc = _isvc(kfserving, name, namespace, args["storage_uri"], args.get("service_account"))
        return sdk.replace(name, isvc, namespace=namespace)
    if operation == "delete":
        return sdk.delete(name, namespace=namespace)
    raise ValueError(f"unknown operation {operation!r}")


def main() -> int:
    kubeconfig, operation, raw = sys.argv[1], sys.argv[2], sys.argv[3]
    try:
        result = run(kubeconfig, operation, json.loads(raw))
    except Exception as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)[-4000:]}))
        return 0
    print(json.dumps({"result": result}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
