"""Problems with an InferenceService, field by field: :class:`FieldError`, the paths it names
(``spec.predictor.containers[0].env``), and parsing a raw object into the model, with
pydantic's errors said the way ``kubectl`` users read them.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Union

from pydantic import BaseModel, ValidationError

from kfserving_operator.api.inference_service import InferenceService


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of an InferenceService."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


_PLAIN_SEGMENT: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def format_path(segments: Iterable[str | int]) -> str:
    """``("spec", "predictor", "containers", 0, "env")`` -> ``spec.predictor.containers[0].env``.

    Map keys that are not plain identifiers (``nvidia.com/gpu``) are written in brackets.
    """
    out = ""
    for segment in segments:
        if isinstance(segment, int):
            out += f"[{segment}]"
        elif segment == "[key]":
            continue
        elif _PLAIN_SEGMENT.match(segment):
            out += f".{segment}" if out else segment
        else:
            out += f"[{segment}]"
    return out


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/list/dict/Annotated wrappers down to a model class (or None)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return None
            annotation = args[0]
        else:
            return annotation


def _model_at(segments: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class found by following ``segments`` from InferenceService, if any."""
    current: Any = InferenceService
    for segment in segments:
        if isinstance(current, type) and issubclass(current, BaseModel):
            if isinstance(segment, int):
                return None
            field = next(
                (f for n, f in current.model_fields.items() if (f.alias or n) == segment), None
            )
            if field is None:
                return None
            current = _unwrap(field.annotation)
        else:
            origin = typing.get_origin(current)
            if origin in (list, dict):
                current = _unwrap(typing.get_args(current)[-1])
            else:
                return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _describe_pydantic_error(item: Mapping[str, Any]) -> str:
    kind = str(item.get("type", ""))
    loc: tuple[str | int, ...] = tuple(item.get("loc", ()))
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        if parent is not None and isinstance(loc[-1], str):
            allowed = sorted(f.alias or n for n, f in parent.model_fields.items())
            close = difflib.get_close_matches(loc[-1], allowed, n=1)
            if close:
                return f"unknown field (did you mean {close[0]!r}?)"
            return "unknown field; allowed fields are " + ", ".join(allowed)
        return "unknown field"
    if kind == "missing":
        return "is required"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be an integer"
    if kind in ("string_type", "string_sub_type"):
        if any(segment in ("limits", "requests", "overhead") for segment in loc):
            return "must be a Kubernetes quantity (a string such as 500m or 2Gi, or a number)"
        return "must be a string"
    if kind in ("bool_type", "bool_parsing"):
        return "must be a boolean"
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return "must be an object"
    if kind in ("list_type", "tuple_type"):
        return "must be a list"
    if kind == "literal_error":
        expected = (item.get("ctx") or {}).get("expected", "")
        return f"must be one of {expected}"
    return str(item.get("msg", "is invalid"))


def field_errors_from_validation_error(
    exc: ValidationError, prefix: Sequence[str | int] = ()
) -> list[FieldError]:
    """Turn a pydantic ValidationError on an InferenceService into FieldErrors."""
    errors: list[FieldError] = []
    for item in exc.errors():
        loc = (*prefix, *item["loc"])
        errors.append(FieldError(format_path(loc) or "(object)", _describe_pydantic_error(item)))
    return errors


def parse_inference_service(
    data: Mapping[str, Any],
) -> tuple[InferenceService | None, list[FieldError]]:
    """Parse a raw object; returns the model, or None and the problems found."""
    if not isinstance(data, Mapping):
        return None, [FieldError("(object)", "must be a JSON object")]
    try:
        return InferenceService.model_validate(dict(data)), []
    except ValidationError as exc:
        return None, field_errors_from_validation_error(exc)
