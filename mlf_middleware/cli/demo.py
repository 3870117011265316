"""``mlf-middleware demo``: the whole story in one command.

Trains a classifier on scikit-learn's bundled breast-cancer data, serves it
over HTTP on 127.0.0.1 behind PredictionLoggingMiddleware, sends every
held-out row (single rows and batches), posts the true labels as actuals
with the ids from ``x-data-id``, and reports from the SQLite file.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..exceptions import MLFError
from ._common import Parser, missing_extra

__all__ = ["run"]

MODEL = "breast-cancer-logreg:1"
BATCH_SIZES = (1, 5, 1, 1, 10)  # cycled: a mix of single rows and batches


def _train(seed: int) -> tuple[Any, list[dict[str, float]], list[str], list[str]]:
    """Fit the model; return it, the held-out rows, their labels, the classes."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    names = [str(n).replace(" ", "_") for n in data.feature_names]
    classes = [str(c) for c in data.target_names]
    x_train, x_test, y_train, y_test = train_test_split(
        data.data,
        data.target,
        test_size=0.3,
        random_state=seed,
        stratify=data.target,
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x_train, y_train)
    rows = [dict(zip(names, map(float, x), strict=True)) for x in x_test]

    return model, rows, [classes[y] for y in y_test], classes


def _app(model: Any, classes: list[str], db: Path) -> tuple[Any, Any]:
    """The served app: /predict behind the middleware, /actuals beside it."""
    import numpy as np
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from ..actuals import actuals_app
    from ..middleware import PredictionLoggingMiddleware
    from ..recorder import Recorder

    recorder = Recorder(f"sqlite:///{db}", model_version_fqn=MODEL)

    async def predict(request: Request) -> JSONResponse:
        body = await request.json()
        rows = body if isinstance(body, list) else [body]
        x = np.array([[row[k] for k in rows[0]] for row in rows])
        out = [
            {
                "prediction": classes[int(np.argmax(p))],
                "probabilities": dict(zip(classes, map(float, p), strict=True)),
            }
            for p in model.predict_proba(x)
        ]
        return JSONResponse(out if isinstance(body, list) else out[0])

    app = Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/actuals", actuals_app(recorder), methods=["POST"]),
        ]
    )
    return PredictionLoggingMiddleware(app, recorder), recorder


class _Server:
    """uvicorn on 127.0.0.1, on a free port, in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the demo server did not start")
            self.thread.join(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


def _send(base: str, rows: list[dict], labels: list[str]) -> tuple[list, list]:
    """POST every row; return the data_ids and predicted labels, row by row."""
    import httpx

    ids: list[str] = []
    predicted: list[str] = []
    with httpx.Client(base_url=base, timeout=30) as client:
        i = n = 0
        while i < len(rows):
            size = BATCH_SIZES[n % len(BATCH_SIZES)]
            chunk = rows[i : i + size]
            body: Any = chunk if size > 1 else chunk[0]
            response = client.post("/predict", json=body)
            response.raise_for_status()
            answers = response.json()
            answers = answers if isinstance(answers, list) else [answers]
            ids.extend(response.headers["x-data-id"].split(","))
            predicted.extend(a["prediction"] for a in answers)
            i, n = i + size, n + 1

        # Ground truth arrives later, keyed by the ids the server handed out.
        actuals = [{"data_id": d, "value": y} for d, y in zip(ids, labels, strict=True)]
        client.post("/actuals", json=actuals).raise_for_status()

    return ids, predicted


def _remove_store(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def run(argv: Sequence[str]) -> int:
    parser = Parser(prog="mlf-middleware demo", description=__doc__)
    parser.add_argument("--db", default="mlf_demo.db", help="SQLite file (replaced)")
    parser.add_argument("--seed", type=int, default=0, help="train/test split seed")
    args = parser.parse_args(argv)
    problem = missing_extra("demo", "sklearn", "numpy", "uvicorn", "httpx")
    if problem:
        print(problem, file=sys.stderr)
        return 2

    db = Path(args.db).absolute()
    _remove_store(db)
    print("training a classifier on scikit-learn's breast-cancer data")
    model, rows, labels, classes = _train(args.seed)
    app, recorder = _app(model, classes, db)
    with _Server(app) as base:
        print(f"serving on {base}; sending {len(rows)} held-out rows")
        _, predicted = _send(base, rows, labels)
    stats = recorder.close(timeout=10)

    sent_accuracy = sum(p == y for p, y in zip(predicted, labels, strict=True))
    try:
        figures = _report(db)
    except MLFError as exc:  # the HTML file could not be written
        print(f"mlf-middleware demo: {exc}", file=sys.stderr)
        return 2
    return _verdict(figures, stats, len(rows), sent_accuracy / len(rows))


def _report(db: Path) -> dict[str, Any]:
    """Print the report of the demo's store, write its HTML beside it.

    Return the model's overall figures for the verdict.
    """
    from ..sinks.sqlite import SQLiteSink
    from .report import build_report, format_report, summarize, write_html

    report = build_report(SQLiteSink(db).joined(MODEL))
    report["store"] = f"sqlite:{db.name}"
    page = write_html(report, db.with_suffix(".html"))
    print(f"\nreport from {db.name}:\n")
    print(format_report(report))
    print(f"\nHTML report: {page}")
    print(f"again, or later: mlf-middleware report --sink sqlite:///{db}")

    models = report["models"]
    return models[0]["summary"] if models else summarize([])


def _verdict(figures: dict, stats: dict, sent: int, accuracy: float) -> int:
    """Exit 1 when the store does not hold exactly what was sent."""
    problems = []
    if figures["predictions"] != sent:
        problems.append(f"{figures['predictions']} predictions stored, {sent} sent")
    if figures["with_actual"] != sent:
        problems.append(f"{figures['with_actual']} joined to an actual, {sent} sent")
    if figures["accuracy"] is None or abs(figures["accuracy"] - accuracy) > 1e-12:
        problems.append("accuracy in the store differs from the client's")
    if stats["dropped"]:
        problems.append(f"dropped: {stats['dropped_by_reason']}")
    for problem in problems:
        print(f"demo: {problem}", file=sys.stderr)

    return 1 if problems else 0
