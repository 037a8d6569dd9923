"""Poison objects: JSON nested too deeply to decode is skipped and reported, never fatal.

kopf decodes its watch streams and initial listings itself, with ``json.loads``; one object
nested past Python's recursion limit raises ``RecursionError`` there and ends the operator.
:func:`install_tolerant_decoding` points kopf's two decoding sites at
:func:`kfserving_operator.k8s.decoding.loads`, which prunes such values instead and records
the object. The event handlers then ask :func:`poisoned` before touching an object, skip it,
and report it once per object version: a Warning event on it, an error log line and the
``kfserving_poison_objects_skipped_total`` counter.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import aiohttp

from kfserving_operator.k8s import decoding
from kfserving_operator.k8s.api import KubeApi
from kfserving_operator.k8s.decoding import PoisonReport

logger = logging.getLogger("kfserving_operator")

POISON_REASON = "UndecodableObject"


def install_tolerant_decoding() -> None:
    """Make kopf's watch streams and listings decode with the tolerant decoder (idempotent).

    kopf has no setting for its JSON decoder, so its API module is adjusted in place: the
    ``json`` name its stream decoder uses, and ``get`` (listings, discovery), which decodes
    the response body. ``tests/unit/test_poison.py`` fails if a kopf upgrade moves either.
    """
    from kopf._cogs.clients import api

    kopf_api: Any = api  # adjusted in place, below
    if getattr(kopf_api, "_kfserving_tolerant", False):
        return
    kopf_api.json = SimpleNamespace(loads=decoding.loads)
    request = kopf_api.request

    async def get(url: str, *, settings: Any, payload: object | None = None,
                  headers: dict[str, str] | None = None,
                  timeout: aiohttp.ClientTimeout | None = None, logger: Any) -> Any:
        response = await request(method="get", url=url, payload=payload, headers=headers,
                                 timeout=timeout, settings=settings, logger=logger)
        async with response:
            return await response.json(loads=decoding.loads)

    kopf_api.get = get
    kopf_api._kfserving_tolerant = True


def poisoned(obj: dict[str, Any]) -> PoisonReport | None:
    """The report for ``obj`` when it arrived pruned (never handle such an object)."""
    return decoding.POISONED.lookup(obj)


def record_unprocessable(obj: dict[str, Any]) -> PoisonReport:
    """Record an object that decoded but is too deep for the handlers to process."""
    return decoding.POISONED.record(obj, "(object)")


async def report(api: KubeApi | None, poison: PoisonReport) -> None:
    """Log and post a Warning event about a skipped object, once per object version."""
    if not decoding.POISONED.first_sighting(poison):
        return
    logger.error("%s", poison.message)
    if api is not None and poison.namespace:
        await api.post_event(poison.involved_object(), "Warning", POISON_REASON,
                             poison.message)
