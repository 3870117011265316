"""Turn the shapes users send and return into rows of features and outputs.

Shared by the decorator, the middleware and the framework adapters, so a shape
understood in one place is understood everywhere. Nothing here normalises
values (the recorder does that once); it only splits calls and bodies into one
features mapping and one ``prediction_data`` mapping per row. numpy and pandas
are never imported here: a value can only be an array or a DataFrame if the
application already imported them, so they are looked up in ``sys.modules``.
"""

from __future__ import annotations

from ._bodies import outputs_from_body, rows_from_body
from ._calls import CallParameters, rows_from_call, rows_from_value
from ._outputs import outputs_for_rows, prediction_data

__all__ = [
    "CallParameters",
    "outputs_for_rows",
    "outputs_from_body",
    "prediction_data",
    "rows_from_body",
    "rows_from_call",
    "rows_from_value",
]
