"""KFServing's storage-initializer interface: ``storage-initializer <storageUri> <dest>``.

Downloads the model with the ``kserve-storage`` package (s3://, gs://, http(s)://, and the
rest it supports) into ``dest`` (``/mnt/models`` in the pod). For s3:// it reads the
environment the operator's credential injection sets: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``S3_ENDPOINT``, ``S3_USE_HTTPS``, ``S3_VERIFY_SSL``,
``AWS_REGION``. A failure exits non-zero with the reason on stderr, which the kubelet
records as the init container's termination message and exit code.
"""

from __future__ import annotations

import contextlib
import logging
import sys


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if len(argv) != 2:
        print("usage: storage-initializer <storageUri> <destination>", file=sys.stderr)
        return 2
    uri, destination = argv
    from kserve_storage import Storage

    logging.info("downloading %s to %s", uri, destination)
    try:
        path = Storage.download(uri, destination)
    except Exception as exc:  # noqa: BLE001 - any failure is the pod's failure reason
        print(f"storage-initializer: cannot download {uri}: {exc}", file=sys.stderr)
        with contextlib.suppress(OSError), open("/dev/termination-log", "w") as log:  # noqa: PTH123
            log.write(f"cannot download {uri}: {exc}"[:4000])
        return 1
    logging.info("model downloaded to %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
