"""Kubernetes resource quantities: parse and check them without a cluster.

The pod webhook, the defaulter and the container builders all need to read quantities such
as ``500m`` or ``2Gi`` (for example ``--nthread`` is the CPU limit rounded up), and the config
model must refuse a malformed one before it reaches a pod.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[kMGTPE]i?|[munpm]|)$")

_SUFFIX_FACTORS: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Decimal:
    """Return the quantity's value in base units (cores, bytes, ...)."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    text = value.strip()
    match = _QUANTITY.match(text)
    if not match or text in {"", "+", "-"}:
        raise QuantityError(
            f"{value!r} is not a Kubernetes quantity (examples: 100m, 1, 2Gi, 512Mi)"
        )
    number, suffix = match.groups()
    try:
        base = Decimal(number)
    except InvalidOperation as exc:
        raise QuantityError(f"{value!r} is not a Kubernetes quantity") from exc
    if suffix[:1] in {"e", "E"}:
        return base * (Decimal(10) ** int(suffix[1:]))
    return base * _SUFFIX_FACTORS[suffix]


def is_quantity(value: object) -> bool:
    """True when ``value`` parses as a quantity."""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return False
    try:
        parse_quantity(value)
    except QuantityError:
        return False
    return True


def ceil_cores(value: str | int | float) -> int:
    """A CPU quantity rounded up to whole cores, at least one."""
    return max(1, math.ceil(parse_quantity(value)))
