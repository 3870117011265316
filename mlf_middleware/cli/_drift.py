"""Feature drift: the PSI of each feature against a reference window.

How values are binned (docs/report.md says the same for readers):

- A feature is numeric when every value it takes (in the reference and in
  the report) is a number; booleans, strings and anything else make it
  categorical. ``None``, an absent key and the stored NaN (``"NaN"``) are
  missing values; ``"Infinity"`` and ``"-Infinity"`` are numbers.
- Numeric: 10 quantile bins from the reference. The cut points are the
  reference's 10th to 90th percentiles (linear interpolation between closest
  ranks), repeated cut points merged; bins are closed on the right:
  (-inf, c1], (c1, c2], ..., (c9, +inf). One more bin holds missing values.
- Categorical: one bin per value among the 20 most frequent in the
  reference (ties by value), one bin "(other)" for every other value and
  one for missing values. Non-string values are compared as JSON text.
- Each bin's share is its count over all the window's rows. A share of 0 in
  either distribution becomes EPSILON (1e-4) so that the logarithm stays
  finite; shares are not renormalised after that.
- PSI = sum over bins of (current - reference) * ln(current / reference).
  Rules of thumb: below 0.1 stable, 0.1 to 0.25 moderate, above 0.25 major.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "CATEGORICAL",
    "EPSILON",
    "HISTOGRAM_BINS",
    "NUMERIC",
    "QUANTILE_BINS",
    "TOP_CATEGORIES",
    "Bins",
    "histogram_pair",
    "kind_of",
    "percentile",
    "psi",
]

NUMERIC = "numeric"
CATEGORICAL = "categorical"
QUANTILE_BINS = 10
TOP_CATEGORIES = 20
EPSILON = 1e-4
HISTOGRAM_BINS = 20
MISSING = "(missing)"
OTHER = "(other)"

_INFINITIES = {"Infinity": math.inf, "-Infinity": -math.inf}


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), interpolating between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    if ordered[low] == ordered[high]:  # also keeps inf - inf out
        return ordered[low]

    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _missing(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    return value is None or value == "NaN"


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return _INFINITIES.get(value)
    return None


def _category(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")


def kind_of(values: Iterable[Any]) -> str:
    """NUMERIC when every present value is a number, else CATEGORICAL."""
    seen_number = False
    for value in values:
        if type(value) is float or type(value) is int:  # the common case, fast
            seen_number = True
        elif _missing(value):
            continue
        elif _number(value) is None:
            return CATEGORICAL
        else:
            seen_number = True

    return NUMERIC if seen_number else CATEGORICAL


def psi(reference: Sequence[float], current: Sequence[float]) -> float:
    """Population stability index of two lists of bin shares."""
    total = math.fsum(
        (c - r) * math.log(c / r)
        for r, c in zip(
            (max(s, EPSILON) for s in reference),
            (max(s, EPSILON) for s in current),
            strict=True,
        )
    )
    return max(total, 0.0)  # each term is >= 0; only rounding could dip below


@dataclass(frozen=True)
class Bins:
    """The bins of one feature, fixed from the reference window."""

    kind: str
    cuts: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()

    @classmethod
    def from_reference(cls, kind: str, values: Sequence[Any]) -> Bins:
        """Quantile cut points (numeric) or the top categories (categorical)."""
        if kind == NUMERIC:
            numbers = [n for n in map(_number, values) if n is not None]
            cuts = (
                [
                    percentile(numbers, 100 * i / QUANTILE_BINS)
                    for i in range(1, QUANTILE_BINS)
                ]
                if numbers
                else []
            )
            return cls(kind, cuts=tuple(sorted(set(cuts))))  # type: ignore[arg-type]
        counts = Counter(_category(v) for v in values if not _missing(v))
        top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))

        return cls(kind, categories=tuple(k for k, _ in top[:TOP_CATEGORIES]))

    def labels(self) -> list[str]:
        """One label per bin, in the order of ``shares``."""
        if self.kind == CATEGORICAL:
            return [*self.categories, OTHER, MISSING]
        if not self.cuts:
            return ["all", MISSING]
        cuts = [f"{c:.4g}" for c in self.cuts]
        inner = [f"({a}, {b}]" for a, b in itertools.pairwise(cuts)]

        return [f"<= {cuts[0]}", *inner, f"> {cuts[-1]}", MISSING]

    @property
    def size(self) -> int:
        """The number of bins, the missing one included."""
        return len(self.cuts or self.categories) + 2

    def index(self, value: Any) -> int:
        """The bin of one value."""
        if self.kind == NUMERIC and (type(value) is float or type(value) is int):
            if value != value:  # NaN
                return self.size - 1
            # The count of cut points strictly below: bins closed on the right.
            return bisect.bisect_left(self.cuts, value)
        if _missing(value):
            return self.size - 1
        if self.kind == CATEGORICAL:
            key = _category(value)
            if key in self.categories:
                return self.categories.index(key)
            return len(self.categories)
        number = _number(value)
        if number is None:  # a stray non-number in a numeric feature
            return self.size - 1
        return bisect.bisect_left(self.cuts, number)

    def shares(self, values: Sequence[Any]) -> list[float]:
        """Each bin's share of ``values`` (0 for all bins when empty)."""
        counts = Counter(map(self.index, values))
        total = len(values)

        return [counts[i] / total if total else 0.0 for i in range(self.size)]


def histogram_pair(
    bins: Bins, reference: Sequence[Any], current: Sequence[Any]
) -> dict[str, Any]:
    """Shares of both windows over bins a reader can see.

    Numeric features get HISTOGRAM_BINS equal-width bins over the range both
    windows span (quantile bins are right for PSI but look flat);
    categorical ones get the PSI bins. Bins empty in both are left out.
    ``ranges`` gives each numeric bin's [low, high] (None: missing values).
    """
    if bins.kind == CATEGORICAL:
        labels = bins.labels()
        ref, cur = bins.shares(reference), bins.shares(current)
        ranges: list[list[float] | None] | None = None
    else:
        labels, edges, ref, cur = _equal_width(reference, current)
        ranges = [[a, b] for a, b in itertools.pairwise(edges)] + [None]
    keep = [i for i in range(len(labels)) if ref[i] or cur[i]]

    return {
        "labels": [labels[i] for i in keep],
        "ranges": None if ranges is None else [ranges[i] for i in keep],
        "reference": [ref[i] for i in keep],
        "current": [cur[i] for i in keep],
    }


def _equal_width(
    reference: Sequence[Any], current: Sequence[Any]
) -> tuple[list[str], list[float], list[float], list[float]]:
    finite = [
        n
        for n in map(_number, [*reference, *current])
        if n is not None and math.isfinite(n)
    ]
    low, high = (min(finite), max(finite)) if finite else (0.0, 0.0)
    count = HISTOGRAM_BINS if high > low else 1
    edges = [low + (high - low) * i / count for i in range(count)] + [high]
    labels = [f"{a:.4g} to {b:.4g}" for a, b in itertools.pairwise(edges)]

    def shares(values: Sequence[Any]) -> list[float]:
        counts = [0] * (count + 1)  # the last one holds missing values
        for value in values:
            counts[_width_index(value, low, high, count)] += 1
        return [c / len(values) if values else 0.0 for c in counts]

    return [*labels, MISSING], edges, shares(reference), shares(current)


def _width_index(value: Any, low: float, high: float, count: int) -> int:
    """The equal-width bin of a value; ``count`` means missing."""
    number = None if _missing(value) else _number(value)
    if number is None:
        return count
    if high == low or number <= low:  # -inf lands in the first bin
        return 0
    if number >= high:  # so does +inf in the last, and the maximum itself
        return count - 1

    return min(math.floor((number - low) / (high - low) * count), count - 1)
