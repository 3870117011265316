"""Rows and outputs of the calls Serve makes: HTTP requests and batches.

Two kinds of call need more than ``capture``'s rules on arguments:

- a method given a Starlette ``Request``: its rows are the JSON body (read
  here, before the method runs; Starlette keeps it, so the method's own
  ``await request.json()`` gets the same value) and its outputs are the
  response body, mapped by the shapes the middleware knows;
- a ``serve.batch`` method: each argument is a list with one item per
  request, so rows, outputs and request ids are worked out request by
  request, and each request's outputs pair only with its own rows.

Everything else goes through ``capture`` unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from mlf_middleware import extract
from mlf_middleware.exceptions import InvalidRecord

from ._context import CallPlan, batch_request_ids, current_plan

__all__ = ["PlanMaker", "Unreadable", "plan_outputs", "plan_rows"]


class Unreadable(Exception):
    """A request body that cannot give rows: the call goes unrecorded."""


class PlanMaker:
    """Work out the rows of a Serve call before it runs (per decorated method).

    Holds only options fixed at decoration; each call's plan is a new object.
    """

    __slots__ = ("_class_names", "_feature_names", "_features", "_model", "_outputs")

    def __init__(
        self,
        *,
        features: Callable[..., Any] | None,
        outputs: Callable[..., Any] | None,
        feature_names: Sequence[str] | None,
        class_names: Sequence[Any] | None,
        model: Any,
    ) -> None:
        self._features = features
        self._outputs = outputs
        self._feature_names = feature_names
        self._class_names = class_names
        self._model = model

    async def plan(
        self, arguments: dict[str, Any], values: Sequence[Any]
    ) -> _Plan | None:
        """Return the call's plan, or None when ``capture``'s rules apply.

        ``arguments`` are the call's data arguments by name, ``values`` all
        the values it was called with but ``self``. Raise Unreadable when
        the call is a request whose body gives no rows.
        """
        ids = batch_request_ids()
        if ids is not None and _is_batch(arguments, len(ids)):
            items = [
                {name: column[index] for name, column in arguments.items()}
                for index in range(len(ids))
            ]
            units = [await self._unit(item.values(), item) for item in items]
            return _Plan(self, units, ids, batched=True)

        if _request_of(values) is not None:
            unit = await self._unit(values, arguments)
            return _Plan(self, [unit], None, batched=False)

        return None

    async def _unit(self, values: Iterable[Any], item: dict[str, Any]) -> _Unit:
        """The rows of one request: its body, else its arguments."""
        request = _request_of(values)
        if request is None:
            rows = extract.rows_from_call(
                (), item, features=self._features, feature_names=self._feature_names
            )
            return _Unit(rows, from_request=False)

        body = await read_json(request)
        if self._features is not None:
            rows = extract.rows_from_call((body,), {}, features=self._features)
        else:
            rows = extract.rows_from_body(body, feature_names=self._feature_names)

        return _Unit(rows, from_request=True)

    def outputs_of(self, result: Any, unit: _Unit) -> list[dict[str, Any]] | None:
        """One request's prediction_data per row, or None if they do not pair."""
        if not unit.from_request:
            return extract.outputs_for_rows(
                result,
                unit.rows,
                outputs=self._outputs,
                class_names=self._class_names,
                model=self._model,
            )

        body = response_json(result)
        if self._outputs is not None:
            return extract.outputs_for_rows(body, unit.rows, outputs=self._outputs)

        return extract.outputs_from_body(
            body, len(unit.rows), class_names=self._class_names
        )


class _Unit:
    """The rows of one request, and whether they came from an HTTP body."""

    __slots__ = ("from_request", "rows")

    def __init__(self, rows: list[dict[str, Any]], *, from_request: bool) -> None:
        self.rows = rows
        self.from_request = from_request


class _Plan(CallPlan):
    """A CallPlan that also knows how to pair the call's result."""

    __slots__ = ("_batched", "_maker", "_units")

    def __init__(
        self,
        maker: PlanMaker,
        units: list[_Unit],
        request_ids: list[str] | None,
        *,
        batched: bool,
    ) -> None:
        super().__init__([unit.rows for unit in units], request_ids)
        self._maker = maker
        self._units = units
        self._batched = batched

    def outputs(self, result: Any) -> list[dict[str, Any]] | None:
        """Pair the call's result with the plan's rows; None if it cannot."""
        if not self._batched:
            return self._maker.outputs_of(result, self._units[0])

        # serve.batch requires one result per request, in request order.
        if not isinstance(result, list | tuple) or len(result) != len(self._units):
            return None
        paired: list[dict[str, Any]] = []
        for unit, item in zip(self._units, result, strict=True):
            outputs = self._maker.outputs_of(item, unit)
            if outputs is None:
                return None
            paired.extend(outputs)

        return paired


def plan_rows(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """``features=`` hook of planned calls: the rows worked out before."""
    plan = current_plan.get()
    if plan is None:
        raise InvalidRecord("no plan for this call")

    return plan.rows


def plan_outputs(result: Any, rows: list[dict[str, Any]]) -> Any:
    """``outputs=`` hook of planned calls: pair the result as planned."""
    plan = current_plan.get()
    if not isinstance(plan, _Plan):
        raise InvalidRecord("no plan for this call")

    return plan.outputs(result)


async def read_json(request: Request) -> Any:
    """The request's JSON body, read once (Starlette keeps it for the app)."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type and not (
        media_type == "application/json" or media_type.endswith("+json")
    ):
        raise Unreadable("not JSON")

    try:
        return await request.json()
    except Exception as exc:  # empty, not JSON, or the client went away
        raise Unreadable(type(exc).__name__) from None


def response_json(result: Any) -> Any:
    """What the client receives as JSON: a Response's body, else the value."""
    if not isinstance(result, Response):
        return result
    if isinstance(result, StreamingResponse):
        raise InvalidRecord("a streaming response has no body to record")

    media_type = (result.media_type or "").lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise InvalidRecord("the response is not JSON")

    return orjson.loads(result.body)


def _is_batch(arguments: dict[str, Any], size: int) -> bool:
    """Whether every data argument is a list with one item per request."""
    return bool(arguments) and all(
        isinstance(values, list | tuple) and len(values) == size
        for values in arguments.values()
    )


def _request_of(values: Iterable[Any]) -> Request | None:
    """The first Starlette Request among a call's values, else None."""
    for value in values:
        if isinstance(value, Request):
            return value

    return None
