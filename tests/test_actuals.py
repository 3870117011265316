"""actuals_app: the endpoint that receives ground truth for recorded ids."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from fastapi import FastAPI
from servers import JSON, call_asgi, http_scope, serve

from mlf_middleware import generate_hash_from_data
from mlf_middleware.actuals import actuals_app
from mlf_middleware.exceptions import ConfigError
from mlf_middleware.middleware import PredictionLoggingMiddleware
from mlf_middleware.records import Actual
from mlf_middleware.testing import FixedClock, flushed, memory_recorder

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def recorder():
    with memory_recorder(clock=FixedClock(T0)) as rec:
        yield rec


def post(app, payload, headers=JSON, *, chunks=None):
    """POST ``payload`` (JSON-encoded unless bytes, or given as ``chunks``)."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    result = asyncio.run(call_asgi(app, chunks or body, headers=headers))
    return result.status, orjson.loads(result.body)


def actual_fields(records):
    assert all(isinstance(r, Actual) for r in records)
    return [(r.data_id, r.value, r.occurred_at, r.model_version_fqn) for r in records]


# -- accepted -------------------------------------------------------------------


def test_one_actual_is_accepted_and_recorded(recorder):
    app = actuals_app(recorder)

    status, body = post(app, {"data_id": "abc", "value": 1})

    assert (status, body) == (202, {"accepted": 1, "dropped": 0, "data_ids": ["abc"]})
    assert actual_fields(flushed(recorder)) == [("abc", 1, T0, None)]


def test_a_list_with_times_and_models_is_accepted(recorder):
    app = actuals_app(recorder)
    items = [
        {"data_id": "a-1", "value": "cat", "occurred_at": "2024-05-01T10:00:00Z"},
        {"data_id": "a-2", "value": [1, 2], "model_version_fqn": "m:3"},
        {"data_id": "a-3", "value": 0.5, "occurred_at": "2024-05-01T12:00:00"},
    ]

    status, body = post(app, items)

    assert status == 202
    assert body == {"accepted": 3, "dropped": 0, "data_ids": ["a-1", "a-2", "a-3"]}
    assert actual_fields(flushed(recorder)) == [
        ("a-1", "cat", datetime(2024, 5, 1, 10, tzinfo=UTC), None),
        ("a-2", [1, 2], T0, "m:3"),
        ("a-3", 0.5, datetime(2024, 5, 1, 12, tzinfo=UTC), None),
    ]


def test_features_give_the_canonical_hash(recorder):
    app = actuals_app(recorder)
    features = {"b": 2.0, "a": [1, "x"], "c": None}

    status, body = post(app, {"features": features, "value": True})

    data_id = generate_hash_from_data(features)
    assert (status, body) == (202, {"accepted": 1, "dropped": 0, "data_ids": [data_id]})
    assert actual_fields(flushed(recorder)) == [(data_id, True, T0, None)]


def test_feature_list_is_named_like_the_middleware_names_it(recorder):
    names = ["sepal", "petal"]
    app = actuals_app(recorder, feature_names=names)

    status, body = post(app, {"features": [5.1, 1.4], "value": 0})

    assert status == 202
    assert body["data_ids"] == [generate_hash_from_data({"sepal": 5.1, "petal": 1.4})]


def test_closed_recorder_reports_dropped_actuals(recorder):
    app = actuals_app(recorder)
    recorder.close(timeout=1)

    status, body = post(app, [{"data_id": "x", "value": 1}])

    assert (status, body) == (202, {"accepted": 0, "dropped": 1, "data_ids": ["x"]})


# -- refused ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"data_id": "a"}, 'missing "value"'),
        ({"data_id": "a", "value": None}, '"value" must not be null'),
        ({"value": 1}, 'give exactly one of "data_id" and "features"'),
        (
            {"data_id": "a", "features": {"x": 1}, "value": 1},
            'give exactly one of "data_id" and "features"',
        ),
        (
            {"data_id": "a b", "value": 1},
            '"data_id" must be 1 to 128 characters of letters, digits and ._:-',
        ),
        (
            {"data_id": "x" * 129, "value": 1},
            '"data_id" must be 1 to 128 characters of letters, digits and ._:-',
        ),
        (
            {"data_id": 7, "value": 1},
            '"data_id" must be 1 to 128 characters of letters, digits and ._:-',
        ),
        ({"data_id": "a", "value": 1, "data-id": "b"}, "unknown field 'data-id'"),
        ({"features": "x=1", "value": 1}, '"features" must be an object'),
        (
            {"data_id": "a", "value": 1, "occurred_at": "yesterday"},
            '"occurred_at" must be an RFC 3339 time',
        ),
        (
            {"data_id": "a", "value": 1, "model_version_fqn": ""},
            '"model_version_fqn" must be a string of 1 to 256 characters',
        ),
        (
            [{"data_id": "a", "value": 1}, {"data_id": "b"}],
            'item 1: missing "value"',
        ),
        ([{"data_id": "a", "value": 1}, 3], "item 1: each actual must be an object"),
        ([], "body is an empty list"),
        (
            "a-1",
            'body must be an object {"data_id": ..., "value": ...} or a list of them',
        ),
    ],
)
def test_invalid_actuals_get_422_naming_the_problem(recorder, payload, error):
    app = actuals_app(recorder)

    status, body = post(app, payload)

    assert (status, body) == (422, {"error": error})
    assert flushed(recorder) == []


@pytest.mark.parametrize("raw", [b"{nope", b"", b"\xff\xfe"])
def test_bad_json_gets_400(recorder, raw):
    status, body = post(actuals_app(recorder), raw)

    assert (status, body) == (400, {"error": "body is not valid JSON"})


def test_other_methods_get_405_with_allow(recorder):
    result = asyncio.run(call_asgi(actuals_app(recorder), method="GET"))

    assert result.status == 405
    assert orjson.loads(result.body) == {"error": "method not allowed: use POST"}
    assert result.header("allow") == "POST"


def test_huge_bodies_get_413(recorder):
    app = actuals_app(recorder, max_body_bytes=64)
    item = orjson.dumps({"data_id": "a", "value": "v" * 100})
    declared = (*JSON, ("content-length", str(len(item))))

    by_length = post(app, item, headers=declared)
    streamed = post(app, None, chunks=[item[:40], item[40:]])

    assert by_length == streamed == (413, {"error": "body over 64 bytes"})
    assert flushed(recorder) == []


def test_client_leaving_mid_body_gets_no_answer(recorder):
    inbox = [
        {"type": "http.request", "body": b'{"data_id"', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent = []

    async def receive():
        return inbox.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(actuals_app(recorder)(http_scope(path="/actuals"), receive, send))

    assert sent == []
    assert flushed(recorder) == []


# -- the bearer token ---------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", "Basic s3cret", "s3cret", "Bearer s3cret-and-more"],
)
def test_missing_or_wrong_token_gets_401(recorder, authorization):
    app = actuals_app(recorder, token="s3cret")
    headers = (
        JSON if authorization is None else (*JSON, ("authorization", authorization))
    )

    result = asyncio.run(
        call_asgi(app, b'{"data_id": "a", "value": 1}', headers=headers)
    )

    assert result.status == 401
    assert orjson.loads(result.body) == {"error": "missing or invalid bearer token"}
    assert result.header("www-authenticate") == "Bearer"
    assert flushed(recorder) == []


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_right_token_is_accepted(recorder, scheme):
    app = actuals_app(recorder, token="s3cret")
    headers = (*JSON, ("authorization", f"{scheme} s3cret"))

    status, body = post(app, {"data_id": "a", "value": 1}, headers=headers)

    assert (status, body) == (202, {"accepted": 1, "dropped": 0, "data_ids": ["a"]})


def test_token_comes_from_the_environment(recorder, monkeypatch):
    monkeypatch.setenv("MLF_ACTUALS_TOKEN", "from-env")
    app = actuals_app(recorder)

    refused = post(app, {"data_id": "a", "value": 1})
    allowed = post(
        app,
        {"data_id": "a", "value": 1},
        headers=(*JSON, ("authorization", "Bearer from-env")),
    )

    assert refused[0] == 401
    assert allowed[0] == 202
    assert "from-env" not in repr(app)


@pytest.mark.parametrize(
    ("option", "value"),
    [("token", ""), ("token", 5), ("max_body_bytes", 0), ("feature_names", "ab")],
)
def test_bad_option_raises_naming_it(option, value):
    with pytest.raises(ConfigError, match=option):
        actuals_app(**{option: value})


def test_lifespan_is_answered_when_served_alone(recorder):
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent = []

    async def receive():
        return inbox.pop(0)

    async def send(message):
        sent.append(message["type"])

    asyncio.run(actuals_app(recorder)({"type": "lifespan"}, receive, send))

    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


# -- together with the middleware, over real HTTP -------------------------------------


def model_server(recorder, *, mount=True, **options):
    """A FastAPI model with actuals mounted at /actuals/, or routed at /actuals."""
    app = FastAPI()

    @app.post("/predict")
    async def predict(body: dict):
        return {"predictions": [len(row) for row in body["instances"]]}

    actuals = actuals_app(recorder, **options)
    if mount:
        app.mount("/actuals", actuals)
    else:
        app.add_route("/actuals", actuals, methods=["POST"])
    return PredictionLoggingMiddleware(app, recorder, **options)


def test_actuals_join_predictions_and_are_never_captured(recorder):
    rows = [{"a": 1}, {"a": 2, "b": 3}]

    with serve(model_server(recorder)) as url, httpx.Client(base_url=url) as client:
        predicted = client.post("/predict", json={"instances": rows})
        ids = predicted.headers["x-data-id"].split(",")
        by_id = client.post("/actuals/", json={"data_id": ids[0], "value": 1})
        by_features = client.post("/actuals/", json={"features": rows[1], "value": 2})

    assert by_id.status_code == by_features.status_code == 202
    assert "x-data-id" not in by_id.headers
    assert "x-data-id" not in by_features.headers
    assert by_features.json()["data_ids"] == [ids[1]]
    records = flushed(recorder)
    assert [(type(r).__name__, r.data_id) for r in records] == [
        ("Prediction", ids[0]),
        ("Prediction", ids[1]),
        ("Actual", ids[0]),
        ("Actual", ids[1]),
    ]


def test_list_rows_get_the_same_id_in_both_places(recorder):
    names = ["sepal", "petal"]

    server = model_server(recorder, mount=False, feature_names=names)
    with serve(server) as url:
        predicted = httpx.post(f"{url}/predict", json={"instances": [[5.1, 1.4]]})
        posted = httpx.post(
            f"{url}/actuals", json={"features": [5.1, 1.4], "value": "setosa"}
        )

    assert "x-data-id" not in posted.headers
    assert posted.json()["data_ids"] == [predicted.headers["x-data-id"]]
    assert [type(r).__name__ for r in flushed(recorder)] == ["Prediction", "Actual"]
    assert predicted.headers["x-data-id"] == generate_hash_from_data(
        {"sepal": 5.1, "petal": 1.4}
    )


def test_blank_token_in_the_environment_is_refused(recorder, monkeypatch):
    monkeypatch.setenv("MLF_ACTUALS_TOKEN", " ")

    with pytest.raises(ConfigError, match="MLF_ACTUALS_TOKEN"):
        actuals_app(recorder)
