"""kopf decodes with the tolerant decoder once the operator has set it up."""

from __future__ import annotations

import inspect

from kopf._cogs.clients import api as kopf_api
from kopf._cogs.clients import fetching, watching

from kfserving_operator.k8s import decoding
from kfserving_operator.operator import poison


def test_kopf_stream_and_listing_decode_tolerantly() -> None:
    poison.install_tolerant_decoding()
    poison.install_tolerant_decoding()  # idempotent
    assert kopf_api.json.loads is decoding.loads
    assert "decoding.loads" in inspect.getsource(kopf_api.get)
    # The sites the hook relies on: if a kopf upgrade moves them, this test says so.
    assert "json.loads(line" in inspect.getsource(kopf_api.stream)
    assert "api.get(" in inspect.getsource(fetching.fetch_objs)
    assert "api.stream(" in inspect.getsource(watching.watch_objs)
