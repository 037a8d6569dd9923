"""Log output: one handler on the root logger, as text or as JSON lines.

- ``text``: ``time level logger: message``, with the logger's full dotted name (kopf's own
  format cuts names at 20 characters).
- ``json``: one JSON object per line with ``time``, ``level``, ``logger`` and ``message``,
  plus ``object`` (apiVersion, kind, namespace, name, uid) on kopf's per-object records.

Records kopf logs about one object carry that object as ``k8s_ref``; both formats show it.
"""

from __future__ import annotations

import datetime
import logging
import sys
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from kfserving_operator.operator.log_filters import RetryLineThrottle

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# kopf's extras on per-object records; `settings` is not serialisable at all.
KOPF_EXTRAS = ("k8s_ref", "k8s_skip", "settings")
# One line per HTTP request or per watch event drowns what matters.
NOISY_LOGGERS = ("httpx2", "httpcore2", "httpx", "httpcore", "aiohttp.access")


def _object_prefix(record: logging.LogRecord) -> str:
    ref = getattr(record, "k8s_ref", None)
    if not isinstance(ref, dict):
        return ""
    namespace, name = ref.get("namespace"), ref.get("name")
    return f"[{namespace}/{name}] " if namespace else f"[{name}] "


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        prefix = _object_prefix(record)
        if prefix:
            record = logging.makeLogRecord({**record.__dict__,
                                            "message": prefix + record.message})
        return super().formatMessage(record)


class JsonLogFormatter(JsonFormatter):
    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED_ATTRS, *KOPF_EXTRAS],
        )

    def formatTime(self, record: logging.LogRecord,
                   datefmt: str | None = None) -> str:
        """RFC 3339 in UTC with milliseconds, as log pipelines parse it."""
        moment = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            log_record["object"] = {k: v for k, v in ref.items() if v is not None}


def configure_logging(log_format: str = "text", verbose: bool = False) -> None:
    """Route every record (ours, kopf's, the libraries') through one stderr handler."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; use one of {LOG_FORMATS}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RetryLineThrottle())  # an API server outage stays a handful of lines
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose:
        # kopf logs every handled watch event about each object at INFO.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
