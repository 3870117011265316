"""A call's result, or one row's output, to prediction_data mappings."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..exceptions import InvalidRecord
from ._shapes import (
    PredictionData,
    all_numbers,
    array_values,
    as_row,
    default_names,
    is_ndarray,
    json_kind,
    plain_list,
    plain_scalar,
    rows_from_columns,
    rows_from_frame,
)

__all__ = ["outputs_for_rows", "prediction_data"]

_VALUE_KEYS = ("value", "prediction", "label")


_PROBABILITY_KEYS = ("probabilities", "scores")


_SCALARS = (int, float, str, bool)


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
            f"outputs= hook returned a {json_kind(produced)}; expected a list of "
            "prediction_data mappings"
        )
    if len(produced) != count:
        return None

    for index, item in enumerate(produced):
        if not isinstance(item, Mapping):
            raise InvalidRecord(
                f"outputs= hook item {index} is a {json_kind(item)}, not a mapping"
            )

    return [as_row(item) for item in produced]


def _model_classes(model: Any) -> list[Any] | None:
    """The class labels of a fitted classifier (``classes_``), if any."""
    classes = getattr(model, "classes_", None)
    if classes is None:
        return None

    return list(plain_list(classes))


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
    if isinstance(inner, list | tuple) or is_ndarray(inner):
        inner = plain_list(inner)
        return inner if len(inner) == count else None

    if count == 1:
        return [result]

    columns = list(result.values())
    if columns and all(
        isinstance(column, list | tuple) and len(column) == count for column in columns
    ):
        return rows_from_columns(
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

    if is_ndarray(result):
        return None if result.ndim == 0 else array_values(result)

    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(result, pandas.DataFrame):
        return rows_from_frame(result)
    if pandas is not None and isinstance(result, pandas.Series):
        return result.tolist()

    return None


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

    item = plain_list(item)
    if (
        class_names is not None
        and isinstance(item, list)
        and len(item) == len(class_names)
        and all_numbers(item)
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
        values = plain_list(scores)
        if not isinstance(values, list):
            raise InvalidRecord(
                f"probabilities must be a mapping or a list, not a {json_kind(values)}"
            )
        classes = _classes(class_names, len(values))

    probabilities = {_label(cls): p for cls, p in zip(classes, values, strict=True)}
    if value is None and values:
        value = classes[max(range(len(values)), key=values.__getitem__)]
        value = plain_scalar(value)

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

    values = plain_list(shap)
    if not isinstance(values, list):
        raise InvalidRecord(
            f"shap_values must be a mapping or a list, not a {json_kind(values)}"
        )

    names = list(row) if row is not None and len(row) == len(values) else None
    return dict(zip(names or default_names(len(values)), values, strict=True))


def _label(cls: Any) -> str:
    """A probability label as text, as the record keys will spell it."""
    if type(cls) is str:
        return cls
    cls = plain_scalar(cls)
    if isinstance(cls, str):
        return cls
    if isinstance(cls, bool):
        return "true" if cls else "false"
    if isinstance(cls, float) and cls.is_integer():
        return str(int(cls))

    return str(cls)


def _is_scores(value: Any) -> bool:
    """Whether a pair's second item looks like probabilities."""
    if isinstance(value, Mapping):
        return True
    if isinstance(value, list | tuple):
        return all_numbers(value)

    return is_ndarray(value) and value.ndim == 1
