"""A Python call's arguments to rows of features."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, is_dataclass
from dataclasses import fields as dc_fields
from typing import Any

from ..exceptions import InvalidRecord
from ._shapes import (
    Row,
    array_values,
    as_row,
    default_names,
    json_kind,
    named_row,
    rows_from_frame,
    rows_from_sequence,
)

__all__ = ["CallParameters", "rows_from_call", "rows_from_value"]


@dataclass(frozen=True, slots=True)
class CallParameters:
    """How a callable names the arguments it is called with.

    Worked out once per decorated callable, so a call only maps positions
    to names. ``names`` are the positional parameters the call's ``args``
    fill (without a bound ``self`` or ``cls``); ``varargs`` names ``*args``;
    ``excluded`` are the arguments that are not data (always ``self`` and
    ``cls``, plus ``exclude_args``).
    """

    names: tuple[str, ...] = ()
    varargs: str | None = None
    excluded: frozenset[str] = frozenset({"self", "cls"})

    @classmethod
    def of(
        cls,
        func: Callable[..., Any],
        *,
        bound: bool = False,
        exclude: Iterable[str] = (),
    ) -> CallParameters:
        """Read ``func``'s signature; ``bound`` drops its first parameter."""
        excluded = frozenset({"self", "cls", *exclude})
        try:
            signature = inspect.signature(func)
        except (TypeError, ValueError):  # builtins without a signature
            return cls(excluded=excluded)

        names: list[str] = []
        varargs = None
        for parameter in signature.parameters.values():
            if parameter.kind in _POSITIONAL:
                names.append(parameter.name)
            elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                varargs = parameter.name
        if bound:
            names = names[1:]

        return cls(tuple(names), varargs, excluded)

    def data_arguments(
        self, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The call's data arguments by name, in call order.

        Framework objects (a Starlette or FastAPI request, response or
        background tasks, say) are never data, whatever their name.
        """
        names = self.names
        excluded = self.excluded
        arguments = {}
        for index, value in enumerate(args):
            name = self._name_of(index) if index >= len(names) else names[index]
            if name not in excluded and not _is_framework_object(value):
                arguments[name] = value
        for name, value in kwargs.items():
            if name not in excluded and not _is_framework_object(value):
                arguments[name] = value

        return arguments

    def _name_of(self, index: int) -> str:
        """Name a positional argument beyond the named parameters."""
        extra = index - len(self.names)
        if self.varargs is None:
            return f"arg{index}"
        if self.varargs in self.excluded:
            return self.varargs

        return f"{self.varargs}[{extra}]"


def _is_framework_object(value: Any) -> bool:
    """Whether a serving framework made this argument (never a feature)."""
    return type(value).__module__.startswith(_FRAMEWORK_MODULES)


def rows_from_call(
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    parameters: CallParameters | None = None,
    features: Callable[..., Any] | None = None,
    feature_names: Sequence[str] | None = None,
) -> list[Row]:
    """Map one call's arguments to rows of features (SPEC section 5).

    ``features(*args, **kwargs)``, when given, returns a mapping or a list of
    mappings. Otherwise the data arguments (all but ``self``, ``cls`` and the
    excluded ones, as ``parameters`` names them) decide: none gives one empty
    row, one is read by ``rows_from_value``, several make one row keyed by
    argument name. Raise InvalidRecord for a shape that cannot be mapped.
    """
    if features is not None:
        return _rows_from_hook(features(*args, **kwargs))

    parameters = parameters or _UNNAMED
    if not kwargs and len(args) == 1 and parameters.names:
        name = parameters.names[0]  # the common call: one positional argument
        if name not in parameters.excluded:
            return rows_from_value(args[0], name=name, feature_names=feature_names)

    arguments = parameters.data_arguments(args, kwargs)
    if len(arguments) != 1:
        return [arguments]

    ((name, value),) = arguments.items()
    return rows_from_value(value, name=name, feature_names=feature_names)


def rows_from_value(
    value: Any,
    *,
    name: str = "input",
    feature_names: Sequence[str] | None = None,
) -> list[Row]:
    """Map one data argument to rows of features.

    A mapping is one row, as it is; a pydantic model or a dataclass is one
    row of its fields; a list of mappings (or of models), a DataFrame, a
    2-D array or a list of lists is one row per item, array rows named by
    ``feature_names`` else ``f0``, ``f1``, ...; a 1-D array or a list of
    numbers is one row of such columns; a Series is one row. Anything else
    is one row ``{name: value}``. Mappings are copied (shallowly), so a
    function that changes its input in place cannot change what is recorded.
    """
    if isinstance(value, Mapping):
        return [dict(value)]

    if isinstance(value, list | tuple):
        if value and all(isinstance(item, Mapping) for item in value):
            return [dict(item) for item in value]
        rows = rows_from_sequence(value, feature_names, name)
        if rows is None:
            rows = _rows_from_objects(value)
        return [{name: value}] if rows is None else rows

    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        return _rows_from_array(value, name, feature_names)

    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, pandas.DataFrame):
        return rows_from_frame(value)
    if pandas is not None and isinstance(value, pandas.Series):
        return [value.to_dict()]

    fields = _fields_of(value)
    return [{name: value}] if fields is None else [fields]


def _rows_from_hook(produced: Any) -> list[Row]:
    """Check what a ``features=`` hook returned."""
    if isinstance(produced, Mapping):
        return [as_row(produced)]
    if isinstance(produced, list | tuple) and all(
        isinstance(row, Mapping) for row in produced
    ):
        return [as_row(row) for row in produced]

    raise InvalidRecord(
        f"features= hook returned a {json_kind(produced)}; expected a mapping "
        "or a list of mappings"
    )


def _rows_from_objects(items: Sequence[Any]) -> list[Row] | None:
    """Rows of a list of pydantic models or dataclasses, else None."""
    rows = []
    for item in items:
        fields = _fields_of(item)
        if fields is None:
            return None
        rows.append(fields)

    return rows


def _rows_from_array(
    array: Any, name: str, feature_names: Sequence[str] | None
) -> list[Row]:
    """Rows of a numpy array: 2-D one per row, 1-D one row, else by item."""
    if array.ndim == 1:
        return [named_row(array_values(array), feature_names, name)]

    if array.ndim == 2:
        names = feature_names
        if names is None:
            names = default_names(array.shape[1])
        elif len(names) != array.shape[1]:
            raise InvalidRecord(
                f"{name} has {array.shape[1]} columns for {len(names)} names"
            )
        return [dict(zip(names, values, strict=True)) for values in array_values(array)]

    if array.ndim == 0:
        return [{name: array[()]}]

    return [{name: item} for item in array]


def _fields_of(value: Any) -> Row | None:
    """The fields of a pydantic model or a dataclass instance, else None.

    Shallow: nested models stay objects for the normaliser to convert.
    """
    model_fields = getattr(type(value), "model_fields", None)
    if isinstance(model_fields, dict) and hasattr(value, "model_dump"):
        fields = {key: getattr(value, key) for key in model_fields}
        extra = getattr(value, "__pydantic_extra__", None)
        if extra:
            fields.update(extra)
        return fields

    if is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dc_fields(value)}

    return None


_POSITIONAL = (
    inspect.Parameter.POSITIONAL_ONLY,
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
)


_UNNAMED = CallParameters()
_FRAMEWORK_MODULES = ("starlette.", "fastapi.", "bentoml.", "_bentoml_", "ray.")
