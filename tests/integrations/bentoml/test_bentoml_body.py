"""request_rows: BentoML request bodies to rows, for the middleware."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

with warnings.catch_warnings():  # BentoML's own imports warn (pathspec)
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("bentoml")
    from mlf_middleware.integrations.bentoml import request_rows

from mlf_middleware.exceptions import ConfigError

pytestmark = pytest.mark.bentoml


@pytest.mark.parametrize(
    ("body", "rows"),
    [
        ({"rows": [[1, 2], [3, 4]]}, [{"f0": 1, "f1": 2}, {"f0": 3, "f1": 4}]),
        ({"items": [{"x": 1}, {"x": 2}]}, [{"x": 1}, {"x": 2}]),
        ({"item": {"x": 1, "y": "a"}}, [{"x": 1, "y": "a"}]),
        ({"text": "hello"}, [{"text": "hello"}]),
        ({"a": 1.5, "b": 2}, [{"a": 1.5, "b": 2}]),
        ([{"x": 1}, {"x": 2}], [{"x": 1}, {"x": 2}]),
    ],
)
def test_body_maps_to_rows(body: Any, rows: list[dict[str, Any]]) -> None:
    assert request_rows()(body) == rows


def test_feature_names_name_array_columns() -> None:
    rows = request_rows(feature_names=["a", "b"])

    assert rows({"rows": [[1, 2], [3, 4]]}) == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]


@pytest.mark.parametrize("names", ["ab", ["a", 1], [], ["a", "a"]])
def test_bad_feature_names_raise(names: Any) -> None:
    with pytest.raises(ConfigError, match="feature_names"):
        request_rows(feature_names=names)
