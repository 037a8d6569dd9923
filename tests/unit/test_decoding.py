"""Tolerant decoding: JSON nested past the recursion limit is pruned and recorded, not fatal."""

from __future__ import annotations

import json
import sys

import pytest

from kfserving_operator import counters
from kfserving_operator.k8s import decoding
from kfserving_operator.k8s.decoding import PRUNED, PoisonLedger, prune, pruned_path


def _deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def _object(name: str, spec: str, rv: str = "7") -> str:
    return ('{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"'
            + name + '","namespace":"ns","uid":"uid-' + name + '","resourceVersion":"' + rv
            + '"},"spec":' + spec + "}")


def test_plain_json_takes_the_fast_path_unchanged() -> None:
    text = _object("fine", '{"s":"a [ { \\" ] }","x":[1,{"y":null}]}')
    assert decoding.loads(text) == json.loads(text)


def test_nesting_beyond_the_recursion_limit_is_pruned_and_recorded() -> None:
    levels = sys.getrecursionlimit() + 500
    with pytest.raises(RecursionError):
        json.loads(_deep(levels))
    before = counters.POISON_OBJECTS_SKIPPED.value
    event = '{"type":"ADDED","object":' + _object("poison", '{"deep":' + _deep(levels) + "}")
    decoded = decoding.loads((event + "}").encode())
    obj = decoded["object"]
    assert obj["metadata"]["name"] == "poison"
    path = pruned_path(obj)
    assert path is not None and path.startswith("spec.deep.a.a")
    report = decoding.POISONED.lookup(obj)
    assert report is not None and report.kind == "Service" and report.namespace == "ns"
    assert "nested deeper than" in report.message and "ns/poison" in report.message
    assert counters.POISON_OBJECTS_SKIPPED.value == before + 1


def test_a_list_page_keeps_its_other_items_whole() -> None:
    levels = sys.getrecursionlimit() + 10
    good = [_object(f"good-{i}", '{"x":[1,2,{"y":"[{"}]}') for i in range(50)]
    page = ('{"kind":"ServiceList","apiVersion":"serving.knative.dev/v1","items":['
            + ",".join([*good[:25], _object("bad", _deep(levels)), *good[25:]]) + "]}")
    items = decoding.loads(page)["items"]
    assert len(items) == 51
    assert [i for i in items if decoding.POISONED.lookup(i)] == [items[25]]
    assert all(pruned_path(i) is None for i in items if i is not items[25])
    assert items[0] == json.loads(good[0])


def test_prune_cuts_only_values_deeper_than_the_limit() -> None:
    text = '{"a":{"b":{"c":[1,"]"]}},"d":"{"}'
    assert json.loads(prune(text, 2)) == {"a": {"b": PRUNED}, "d": "{"}
    assert json.loads(prune(text, 10)) == json.loads(text)


def test_not_json_still_raises_a_decode_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        decoding.loads("{not json")


def test_ledger_reports_each_version_once_and_stays_bounded() -> None:
    ledger = PoisonLedger(limit=2)
    obj = json.loads(_object("x", "{}"))
    report = ledger.record(obj, "spec")
    assert ledger.first_sighting(report) and not ledger.first_sighting(report)
    for name in ("y", "z"):
        ledger.record(json.loads(_object(name, "{}")), "spec")
    assert len(ledger) == 2 and ledger.lookup(obj) is None
