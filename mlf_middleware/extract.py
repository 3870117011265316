"""Turn the shapes users send and return into rows of features and outputs.

Shared by the decorator, the middleware and the framework adapters, so a shape
understood in one place is understood everywhere. Nothing here normalises
values (the recorder does that once); it only splits calls and bodies into one
features mapping and one ``prediction_data`` mapping per row. numpy and pandas
are never imported here: a value can only be an array or a DataFrame if the
application already imported them, so they are looked up in ``sys.modules``.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, is_dataclass
from dataclasses import fields as dc_fields
from functools import lru_cache
from numbers import Real
from typing import Any

from mlf_middleware.exceptions import InvalidRecord

__all__ = [
    "CallParameters",
    "outputs_for_rows",
    "outputs_from_body",
    "prediction_data",
    "rows_from_body",
    "rows_from_call",
    "rows_from_value",
]

# Keys that may sit beside an envelope key without making it a plain row.
_ENVELOPE_EXTRAS = frozenset({"signature_name", "params", "parameters"})
_ROW_ENVELOPES = (
    "instances",
    "inputs",
    "dataframe_split",
    "dataframe_records",
    "features",
)
_VALUE_KEYS = ("value", "prediction", "label")
_PROBABILITY_KEYS = ("probabilities", "scores")

Row = dict[str, Any]
PredictionData = dict[str, Any]


# --------------------------------------------------------------------------
# Request and response bodies (parsed JSON)
# --------------------------------------------------------------------------


def rows_from_body(
    body: Any, *, feature_names: Sequence[str] | None = None
) -> list[Row]:
    """Map a parsed JSON request body to rows of features.

    ``{...}`` is one row; ``[{...}, ...]`` and ``[[...], ...]`` are rows; a
    list of numbers is one row. Envelopes, alone in their object or beside
    ``signature_name`` / ``params`` / ``parameters``: ``{"instances": [...]}``
    and ``{"inputs": [...]}`` give one row per item (an item that is a list
    is named by ``feature_names``, else ``f0``, ``f1``, ...; a bare scalar is
    a one-column row); ``{"inputs": {"col": [...]}}`` is columnar;
    ``{"dataframe_split": {"columns": [...], "data": [[...]]}}`` and
    ``{"dataframe_records": [...]}`` are rows; ``{"features": {...}}`` is
    one row. Raise InvalidRecord naming the problem for anything else.
    """
    if isinstance(body, Mapping):
        return _rows_from_object(body, feature_names)

    if isinstance(body, list):
        rows = _rows_from_sequence(body, feature_names, "request body")
        if rows is None:
            raise InvalidRecord(
                "request body: a JSON array must hold objects, arrays or "
                "numbers, not a mix or other values"
            )
        return rows

    raise InvalidRecord(f"request body is a {_kind(body)}, not a JSON object or array")


def outputs_from_body(
    body: Any,
    n_rows: int,
    *,
    class_names: Sequence[Any] | None = None,
) -> list[PredictionData] | None:
    """Map a parsed JSON response body to one prediction_data per row.

    Accepts the request shapes plus ``{"predictions": [...]}`` (other keys
    beside it are ignored) and ``{"outputs": ...}``. With one row, a scalar,
    an object or a ``[value, {label: probability}]`` pair is that row's
    output. Return None when the body does not hold exactly ``n_rows``
    outputs, so the caller can warn and record nothing unpairable. Raise
    InvalidRecord for an item it cannot read (probabilities that do not
    match ``class_names``, say).
    """
    items = _output_items(body, n_rows)
    if items is None:
        return None

    return [prediction_data(item, class_names=class_names) for item in items]


def _rows_from_object(
    body: Mapping[Any, Any], feature_names: Sequence[str] | None
) -> list[Row]:
    """Rows of a JSON object: an envelope, or else one plain row."""
    key = _envelope_key(body, _ROW_ENVELOPES)
    if key is None:
        return [_as_row(body)]

    inner = body[key]
    if key == "features":
        if isinstance(inner, Mapping):
            return [_as_row(inner)]
        return [_as_row(body)]

    if key == "dataframe_split":
        return _rows_from_split(inner, feature_names)

    if key == "inputs" and isinstance(inner, Mapping):
        return _rows_from_columns(inner, "inputs")

    if not isinstance(inner, list):
        raise InvalidRecord(f"{key} must be a JSON array, not a {_kind(inner)}")

    return _rows_from_instances(inner, feature_names, key)


def _envelope_key(body: Mapping[Any, Any], keys: Sequence[str]) -> str | None:
    """Return the envelope key wrapping ``body``, or None for a plain row."""
    for key in keys:
        if key not in body:
            continue
        if all(other == key or other in _ENVELOPE_EXTRAS for other in body):
            return key
        return None

    return None


def _rows_from_instances(
    items: list[Any], feature_names: Sequence[str] | None, where: str
) -> list[Row]:
    """One row per instance: an object, an array of values or a scalar."""
    rows = []
    for index, item in enumerate(items):
        if isinstance(item, Mapping):
            rows.append(_as_row(item))
        elif isinstance(item, list | tuple):
            rows.append(_named_row(item, feature_names, f"{where}[{index}]"))
        else:
            rows.append(_named_row((item,), feature_names, f"{where}[{index}]"))

    return rows


def _rows_from_columns(columns: Mapping[Any, Any], where: str) -> list[Row]:
    """Rows of a columnar object ``{"col": [...]}``, or one row if not."""
    if not columns or not all(isinstance(column, list) for column in columns.values()):
        return [_as_row(columns)]

    lengths = {len(column) for column in columns.values()}
    if len(lengths) != 1:
        raise InvalidRecord(
            f"{where}: columns have different lengths {sorted(lengths)}"
        )

    names = list(columns)
    return [
        dict(zip(names, values, strict=False))
        for values in zip(*columns.values(), strict=True)
    ]


def _rows_from_split(split: Any, feature_names: Sequence[str] | None) -> list[Row]:
    """Rows of a pandas ``orient="split"`` object."""
    if not isinstance(split, Mapping):
        raise InvalidRecord(
            f"dataframe_split must be a JSON object, not a {_kind(split)}"
        )

    data = split.get("data")
    if not isinstance(data, list):
        raise InvalidRecord("dataframe_split.data must be a JSON array")

    columns = split.get("columns", feature_names)
    if columns is not None and not isinstance(columns, list | tuple):
        raise InvalidRecord("dataframe_split.columns must be a JSON array")

    rows = []
    for index, values in enumerate(data):
        if not isinstance(values, list | tuple):
            raise InvalidRecord(f"dataframe_split.data[{index}] is not an array")
        rows.append(_named_row(values, columns, f"dataframe_split.data[{index}]"))

    return rows


def _output_items(body: Any, n_rows: int) -> list[Any] | None:
    """Split a response body into one raw output per row, or None."""
    if n_rows <= 0:
        return []

    if isinstance(body, Mapping):
        return _output_items_of_object(body, n_rows)

    if isinstance(body, list):
        if len(body) == n_rows:
            return body
        if n_rows == 1 and len(body) == 2 and isinstance(body[1], Mapping):
            return [(body[0], body[1])]
        return None

    return [body] if n_rows == 1 else None


def _output_items_of_object(body: Mapping[Any, Any], n_rows: int) -> list[Any] | None:
    """Outputs of a JSON object: an envelope, or one row's output."""
    inner = body.get("predictions")
    if inner is None and _envelope_key(body, ("outputs",)) == "outputs":
        inner = body["outputs"]
    if inner is not None:
        if isinstance(inner, Mapping):
            inner = _rows_from_columns(inner, "predictions")
        if not isinstance(inner, list):
            inner = [inner]
        return inner if len(inner) == n_rows else None

    if _envelope_key(body, _ROW_ENVELOPES[:-1]) is not None:
        rows = _rows_from_object(body, None)
        return rows if len(rows) == n_rows else None

    return [body] if n_rows == 1 else None


# --------------------------------------------------------------------------
# Python calls (the decorator and the adapters)
# --------------------------------------------------------------------------


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
        """The call's data arguments by name, in call order."""
        names = self.names
        excluded = self.excluded
        arguments = {}
        for index, value in enumerate(args):
            name = self._name_of(index) if index >= len(names) else names[index]
            if name not in excluded:
                arguments[name] = value
        for name, value in kwargs.items():
            if name not in excluded:
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
    is one row ``{name: value}``.
    """
    if isinstance(value, dict):
        return [value]
    if isinstance(value, Mapping):
        return [dict(value)]

    if isinstance(value, list | tuple):
        rows = _rows_from_sequence(value, feature_names, name)
        if rows is None:
            rows = _rows_from_objects(value)
        return [{name: value}] if rows is None else rows

    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        return _rows_from_array(value, name, feature_names)

    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, pandas.DataFrame):
        return _rows_from_frame(value)
    if pandas is not None and isinstance(value, pandas.Series):
        return [value.to_dict()]

    fields = _fields_of(value)
    return [{name: value}] if fields is None else [fields]


def _rows_from_hook(produced: Any) -> list[Row]:
    """Check what a ``features=`` hook returned."""
    if isinstance(produced, Mapping):
        return [_as_row(produced)]
    if isinstance(produced, list | tuple) and all(
        isinstance(row, Mapping) for row in produced
    ):
        return [_as_row(row) for row in produced]

    raise InvalidRecord(
        f"features= hook returned a {_kind(produced)}; expected a mapping "
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
        return [_named_row(_array_values(array), feature_names, name)]

    if array.ndim == 2:
        names = feature_names
        if names is None:
            names = _default_names(array.shape[1])
        elif len(names) != array.shape[1]:
            raise InvalidRecord(
                f"{name} has {array.shape[1]} columns for {len(names)} names"
            )
        return [
            dict(zip(names, values, strict=True)) for values in _array_values(array)
        ]

    if array.ndim == 0:
        return [{name: array[()]}]

    return [{name: item} for item in array]


def _array_values(array: Any) -> list[Any]:
    """An array as nested lists: Python numbers for numeric dtypes.

    ``tolist()`` gives the same numbers the normaliser would (float32 kept
    as the double it holds); other dtypes (datetime64 would become integers)
    keep their numpy values for the normaliser.
    """
    if array.dtype.kind in "biuf":
        return array.tolist()

    return [list(row) if array.ndim > 1 else row for row in array]


def _rows_from_frame(frame: Any) -> list[Row]:
    """One row per DataFrame row, keyed by column name."""
    if not frame.columns.is_unique:
        raise InvalidRecord("DataFrame has duplicate column names")

    # Column by column is faster than to_dict("records") and gives the same
    # Python values (Series.tolist boxes numpy scalars as to_dict does).
    names = list(frame.columns)
    columns = [column.tolist() for _, column in frame.items()]
    if not names:
        return [{} for _ in range(len(frame))]

    return [dict(zip(names, values, strict=True)) for values in zip(*columns)]  # noqa: B905


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
_SCALARS = (int, float, str, bool)


# --------------------------------------------------------------------------
# Outputs of a call
# --------------------------------------------------------------------------


def outputs_for_rows(
    result: Any,
    rows: Sequence[Mapping[Any, Any]],
    *,
    outputs: Callable[[Any, Sequence[Mapping[Any, Any]]], Any] | None = None,
    class_names: Sequence[Any] | None = None,
    model: Any = None,
) -> list[PredictionData] | None:
    """Pair a call's result with its rows: one prediction_data per row.

    ``outputs(result, rows)``, when given, returns them. Otherwise, for one
    row: a scalar, a mapping, a ``(value, probabilities)`` pair, or a
    one-item list or array; for several: a list, tuple or array with one
    item per row, ``{"predictions": [...]}``, a columnar mapping, a
    DataFrame, or a ``(values, probabilities)`` pair of batches. Arrays of
    probabilities are labelled by ``class_names``, else ``model.classes_``.
    Return None when result and rows disagree in count.
    """
    count = len(rows)
    if outputs is not None:
        return _outputs_from_hook(outputs(result, rows), count)

    labels = class_names
    if labels is None and model is not None:
        labels = _model_classes(model)
    if count == 1 and type(result) is dict and "predictions" not in result:
        return [_from_mapping(result, labels, rows[0])]  # the common call: one row
    if count == 1 and type(result) in _SCALARS:
        return [{"value": result}]

    items = _result_items(result, count)
    if items is None:
        return None

    return [
        prediction_data(item, class_names=labels, row=row)
        for item, row in zip(items, rows, strict=True)
    ]


def _outputs_from_hook(produced: Any, count: int) -> list[PredictionData] | None:
    """Check what an ``outputs=`` hook returned."""
    if isinstance(produced, Mapping):
        produced = [produced]
    if not isinstance(produced, list | tuple):
        raise InvalidRecord(
            f"outputs= hook returned a {_kind(produced)}; expected a list of "
            "prediction_data mappings"
        )
    if len(produced) != count:
        return None

    for index, item in enumerate(produced):
        if not isinstance(item, Mapping):
            raise InvalidRecord(
                f"outputs= hook item {index} is a {_kind(item)}, not a mapping"
            )

    return [_as_row(item) for item in produced]


def _model_classes(model: Any) -> list[Any] | None:
    """The class labels of a fitted classifier (``classes_``), if any."""
    classes = getattr(model, "classes_", None)
    if classes is None:
        return None

    return list(_plain_list(classes))


def _result_items(result: Any, count: int) -> list[Any] | None:
    """Split a call's result into one raw output per row, or None."""
    if count == 0:
        return []

    if isinstance(result, Mapping):
        return _items_of_mapping(result, count)

    if isinstance(result, tuple) and len(result) == 2:
        pairs = _batch_pairs(result, count)
        if pairs is not None:
            return pairs
        if count == 1 and _is_scores(result[1]):
            return [result]

    sequence = _as_sequence(result)
    if sequence is None:
        return [result] if count == 1 else None
    if len(sequence) == count:
        return sequence
    if count == 1:
        return [result]

    return None


def _items_of_mapping(result: Mapping[Any, Any], count: int) -> list[Any] | None:
    """Outputs held in a mapping: an envelope, columns, or one row's."""
    inner = result.get("predictions")
    if isinstance(inner, list | tuple) or _is_ndarray(inner):
        inner = _plain_list(inner)
        return inner if len(inner) == count else None

    if count == 1:
        return [result]

    columns = list(result.values())
    if columns and all(
        isinstance(column, list | tuple) and len(column) == count for column in columns
    ):
        return _rows_from_columns(
            {key: list(column) for key, column in result.items()}, "result"
        )

    return None


def _batch_pairs(result: tuple[Any, Any], count: int) -> list[Any] | None:
    """``(values, probabilities)`` for a batch as per-row pairs, or None."""
    values = _as_sequence(result[0])
    scores = _as_sequence(result[1])
    if values is None or scores is None:
        return None
    if len(values) != count or len(scores) != count:
        return None
    if not all(_is_scores(row) for row in scores):
        return None

    return list(zip(values, scores, strict=True))


def _as_sequence(result: Any) -> list[Any] | None:
    """A batch result as a list of per-row items, or None if not a batch."""
    if isinstance(result, list):
        return result
    if isinstance(result, tuple):
        return list(result)

    if _is_ndarray(result):
        return None if result.ndim == 0 else _array_values(result)

    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(result, pandas.DataFrame):
        return _rows_from_frame(result)
    if pandas is not None and isinstance(result, pandas.Series):
        return result.tolist()

    return None


# --------------------------------------------------------------------------
# One row's output
# --------------------------------------------------------------------------


def prediction_data(
    item: Any,
    *,
    class_names: Sequence[Any] | None = None,
    row: Mapping[Any, Any] | None = None,
) -> PredictionData:
    """Map one row's raw output to a ``prediction_data`` mapping.

    A mapping gives ``value`` (from ``value``, ``prediction`` or ``label``),
    ``probabilities`` (from ``probabilities`` or ``scores``), ``shap_values``
    and ``error``; a mapping with none of them is itself the value. A pair
    ``(value, probabilities)`` gives both. A list or array of numbers as long
    as ``class_names`` is read as probabilities. Anything else is the value.
    Probabilities without a value take the most probable label's class as
    value. ``row`` names a list of SHAP values by its feature names.
    """
    if isinstance(item, Mapping):
        return _from_mapping(item, class_names, row)

    if isinstance(item, tuple) and len(item) == 2 and _is_scores(item[1]):
        return _with_probabilities(item[0], item[1], class_names)

    item = _plain_list(item)
    if (
        class_names is not None
        and isinstance(item, list)
        and len(item) == len(class_names)
        and _all_numbers(item)
    ):
        return _with_probabilities(None, item, class_names)

    return {"value": item}


def _from_mapping(
    item: Mapping[Any, Any],
    class_names: Sequence[Any] | None,
    row: Mapping[Any, Any] | None,
) -> PredictionData:
    """Read the known fields of one output mapping."""
    value_key = scores_key = None
    for key in _VALUE_KEYS:
        if key in item:
            value_key = key
            break
    for key in _PROBABILITY_KEYS:
        if key in item:
            scores_key = key
            break
    if value_key is None and scores_key is None:
        return {"value": item}

    value = item[value_key] if value_key is not None else None
    if scores_key is None:
        data: PredictionData = {"value": value}
    else:
        data = _with_probabilities(value, item[scores_key], class_names)

    shap = item.get("shap_values")
    if shap is not None:
        data["shap_values"] = _shap_values(shap, row)
    error = item.get("error")
    if error is not None:
        data["error"] = error

    return data


def _with_probabilities(
    value: Any, scores: Any, class_names: Sequence[Any] | None
) -> PredictionData:
    """A prediction_data with labelled probabilities (and a value)."""
    if type(scores) is dict and value is not None:  # the common, fast case
        probabilities = {
            label if type(label) is str else _label(label): p
            for label, p in scores.items()
        }
        return {"value": value, "probabilities": probabilities}

    if isinstance(scores, Mapping):
        classes = list(scores)
        values = list(scores.values())
    else:
        values = _plain_list(scores)
        if not isinstance(values, list):
            raise InvalidRecord(
                f"probabilities must be a mapping or a list, not a {_kind(values)}"
            )
        classes = _classes(class_names, len(values))

    probabilities = {_label(cls): p for cls, p in zip(classes, values, strict=True)}
    if value is None and values:
        value = classes[max(range(len(values)), key=values.__getitem__)]
        value = _plain_scalar(value)

    return {"value": value, "probabilities": probabilities}


def _classes(class_names: Sequence[Any] | None, count: int) -> list[Any]:
    """The class of each probability column: given names, else indexes."""
    if class_names is None:
        return list(range(count))
    if len(class_names) != count:
        raise InvalidRecord(
            f"probabilities: {count} values but {len(class_names)} class names"
        )

    return list(class_names)


def _shap_values(shap: Any, row: Mapping[Any, Any] | None) -> Any:
    """SHAP values as a mapping: a list is named by the row's features."""
    if isinstance(shap, Mapping):
        return dict(shap)

    values = _plain_list(shap)
    if not isinstance(values, list):
        raise InvalidRecord(
            f"shap_values must be a mapping or a list, not a {_kind(values)}"
        )

    names = list(row) if row is not None and len(row) == len(values) else None
    return dict(zip(names or _default_names(len(values)), values, strict=True))


def _label(cls: Any) -> str:
    """A probability label as text, as the record keys will spell it."""
    if type(cls) is str:
        return cls
    cls = _plain_scalar(cls)
    if isinstance(cls, str):
        return cls
    if isinstance(cls, bool):
        return "true" if cls else "false"
    if isinstance(cls, float) and cls.is_integer():
        return str(int(cls))

    return str(cls)


# --------------------------------------------------------------------------
# Small shared helpers
# --------------------------------------------------------------------------


def _rows_from_sequence(
    items: Sequence[Any], feature_names: Sequence[str] | None, where: str
) -> list[Row] | None:
    """Rows of a list: mappings, arrays of values, or numbers; else None."""
    if not items:
        return []

    first = items[0]
    if isinstance(first, Mapping):
        if not all(isinstance(item, Mapping) for item in items):
            return None
        return [_as_row(item) for item in items]

    if isinstance(first, list | tuple) or _is_ndarray(first):
        if not all(
            isinstance(item, list | tuple) or _is_ndarray(item) for item in items
        ):
            return None
        return [
            _named_row(_plain_list(values), feature_names, f"{where}[{index}]")
            for index, values in enumerate(items)
        ]

    if _all_numbers(items):
        return [_named_row(items, feature_names, where)]

    return None


def _named_row(
    values: Sequence[Any], feature_names: Sequence[str] | None, where: str
) -> Row:
    """Name an array of values by ``feature_names``, else f0, f1, ..."""
    names = feature_names
    if names is None:
        names = _default_names(len(values))
    elif len(names) != len(values):
        raise InvalidRecord(f"{where} has {len(values)} values for {len(names)} names")

    return dict(zip(names, values, strict=True))


@lru_cache(maxsize=64)
def _default_names(count: int) -> tuple[str, ...]:
    """Column names f0, f1, ... for values that come without names."""
    return tuple(f"f{index}" for index in range(count))


def _as_row(mapping: Mapping[Any, Any]) -> Row:
    """A mapping as a row: a dict stays the same object (no copy)."""
    return mapping if isinstance(mapping, dict) else dict(mapping)


def _is_scores(value: Any) -> bool:
    """Whether a pair's second item looks like probabilities."""
    if isinstance(value, Mapping):
        return True
    if isinstance(value, list | tuple):
        return _all_numbers(value)

    return _is_ndarray(value) and value.ndim == 1


def _all_numbers(values: Sequence[Any]) -> bool:
    """Whether every item is a real number (bools are not numbers here)."""
    return all(
        isinstance(value, Real) and not isinstance(value, bool) for value in values
    )


def _is_ndarray(value: Any) -> bool:
    """Whether value is a numpy array, without importing numpy."""
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray)


def _plain_list(value: Any) -> Any:
    """A numpy array as a list of Python values; anything else unchanged."""
    if isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    if _is_ndarray(value) and value.ndim >= 1:
        return value.tolist()

    return value


def _plain_scalar(value: Any) -> Any:
    """A numpy scalar as the Python scalar it holds."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "shape", None) == ():
        return item()

    return value


def _kind(value: Any) -> str:
    """The JSON-ish kind of a value, for error messages without contents."""
    names = {
        dict: "object",
        list: "array",
        str: "string",
        int: "number",
        float: "number",
        bool: "boolean",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)
