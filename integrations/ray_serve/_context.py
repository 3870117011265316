"""What Ray Serve tells a replica about itself and the requests at hand.

Ray is never imported here: a process that has not imported
``ray.serve.context`` cannot be a Serve replica, so looking in
``sys.modules`` costs a dict lookup and no import.

The replica's names come from ``serve.get_replica_context()``; request ids
come from ``ray.serve.context``'s request context variables, which Ray
marks private (read as Ray 2.60 names them; the Ray tests of
this package pin the behaviour). If a Ray release renames them, records
simply lose their ``request_id``: nothing else changes.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

__all__ = [
    "CallPlan",
    "batch_request_ids",
    "current_plan",
    "replica_metadata",
    "request_id",
    "stamp",
]


class CallPlan:
    """The rows of one call worked out before it runs, and their requests.

    ``rows`` are the rows in record order; ``request_ids`` maps each row (by
    identity: rows are dicts the recorder receives as they are) to the id of
    the request it came from, for batched calls where Serve's own request
    context names only one of the requests.
    """

    __slots__ = ("groups", "request_ids", "rows")

    def __init__(
        self,
        groups: list[list[dict[str, Any]]],
        request_ids: list[str] | None = None,
    ) -> None:
        self.groups = groups
        self.rows = [row for group in groups for row in group]
        self.request_ids: dict[int, str] = {}
        if request_ids is not None:
            for group, rid in zip(groups, request_ids, strict=True):
                for row in group:
                    self.request_ids[id(row)] = rid


# The plan of the call running in this task; the recorder reads it to give
# each row of a batch its own request id.
current_plan: ContextVar[CallPlan | None] = ContextVar(
    "mlf_middleware_ray_serve_plan", default=None
)


def replica_metadata() -> dict[str, str] | None:
    """Return this replica's application, deployment and id, or None."""
    serve = sys.modules.get("ray.serve")
    if serve is None:
        return None

    try:
        context = serve.get_replica_context()  # raises outside a replica
        return {
            "application": str(context.app_name),
            "deployment": str(context.deployment),
            "replica_id": str(context.replica_id.unique_id),
        }
    except Exception:  # not a replica, or a Ray without these names
        return None


def request_id() -> str | None:
    """Return the id of the Serve request this task serves, if any."""
    serve_context = sys.modules.get("ray.serve.context")
    if serve_context is None:
        return None

    try:
        context = serve_context._serve_request_context.get()
        return (context.request_id or None) if context is not None else None
    except Exception:
        return None


def batch_request_ids() -> list[str] | None:
    """Return the request ids of the ``serve.batch`` call running, in order.

    None outside a batched call. Serve sets them once per batch, aligned with
    the lists the batched method receives.
    """
    serve_context = sys.modules.get("ray.serve.context")
    if serve_context is None:
        return None

    try:
        contexts = serve_context._serve_batch_request_context.get()
        if not contexts:
            return None
        return [str(context.request_id) for context in contexts]
    except Exception:
        return None


def stamp(raw_data: Mapping[str, Any] | None, row: Any) -> Mapping[str, Any] | None:
    """Return ``raw_data`` with the replica's metadata and the row's request.

    Outside a Serve replica it is returned unchanged. A ``request_id``
    already present (the middleware reads ``x-request-id``) is kept.
    """
    replica = replica_metadata()
    if replica is None:
        return raw_data

    stamped = dict(raw_data or {})
    stamped["framework"] = "ray_serve"
    stamped.update(replica)
    if not stamped.get("request_id"):
        rid = _planned_request_id(row) or request_id()
        if rid:
            stamped["request_id"] = rid

    return stamped


def _planned_request_id(row: Any) -> str | None:
    plan = current_plan.get()
    if plan is None or not plan.request_ids:
        return None

    return plan.request_ids.get(id(row))
