"""PredictionLoggingMiddleware, driven in-process message by message."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import threading
from datetime import UTC, datetime

import orjson
import pytest
from servers import JSON, call_asgi, http_scope

from mlf_middleware import generate_hash_from_data
from mlf_middleware import middleware as middleware_module
from mlf_middleware._logging import RateLimitedLog
from mlf_middleware.exceptions import ConfigError
from mlf_middleware.middleware import EXCHANGE_KEY, PredictionLoggingMiddleware
from mlf_middleware.testing import FixedClock, flushed, memory_recorder

T0 = datetime(2024, 1, 1, tzinfo=UTC)
ROW = {"sepal": 5.1, "petal": 1.4}
RAW = {"framework": "asgi", "method": "POST", "path": "/predict", "status": 200}


def run(coroutine):
    return asyncio.run(coroutine)


def essentials(record):
    """The fields of a prediction record that do not vary between runs."""
    return {
        "data_id": record.data_id,
        "features": dict(record.features),
        "prediction_data": dict(record.prediction_data),
        "raw_data": dict(record.raw_data or {}),
        "model_version_fqn": record.model_version_fqn,
        "occurred_at": record.occurred_at,
    }


def prediction(data_id, features, prediction_data, raw=RAW, model=None):
    return {
        "data_id": data_id,
        "features": features,
        "prediction_data": prediction_data,
        "raw_data": raw,
        "model_version_fqn": model,
        "occurred_at": T0,
    }


def json_app(respond, *, status=200, content_type=b"application/json"):
    """A bare ASGI app: read the JSON body, answer ``respond(body)``."""

    async def app(scope, receive, send):
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        payload = orjson.dumps(respond(json.loads(body)))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type)],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    return app


def echo_label(body):
    return {"label": "setosa", "probabilities": {"setosa": 0.75, "other": 0.25}}


@pytest.fixture(autouse=True)
def _fresh_warning_limits(monkeypatch):
    """Every test sees its own first warnings (they are rate-limited)."""
    monkeypatch.setattr(
        middleware_module, "warn", RateLimitedLog(middleware_module.log)
    )


@pytest.fixture
def recorder():
    with memory_recorder(clock=FixedClock(T0)) as rec:
        yield rec


# -- one row, a batch, the id header ---------------------------------------------


def test_single_row_gets_header_and_exact_record(recorder):
    app = PredictionLoggingMiddleware(json_app(echo_label), recorder)

    result = run(call_asgi(app, orjson.dumps(ROW)))

    data_id = generate_hash_from_data(ROW)
    assert result.status == 200
    assert result.body == orjson.dumps(echo_label(ROW))
    assert result.header("x-data-id") == data_id
    records = flushed(recorder)
    assert [essentials(r) for r in records] == [
        prediction(
            data_id,
            ROW,
            {"value": "setosa", "probabilities": {"setosa": 0.75, "other": 0.25}},
        )
    ]
    assert records[0].latency_ms > 0


def test_batch_of_three_gets_three_hash_ids(recorder):
    rows = [{"x": 1}, {"x": 2.5}, {"x": "three"}]
    app = PredictionLoggingMiddleware(
        json_app(lambda body: {"predictions": [[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]}),
        recorder,
        class_names=["no", "yes"],
        model_version_fqn="iris:2",
    )

    result = run(call_asgi(app, orjson.dumps({"instances": rows})))

    ids = [generate_hash_from_data(row) for row in rows]
    assert result.header("x-data-id") == ",".join(ids)
    assert result.header("x-data-id-count") is None
    assert [essentials(r) for r in flushed(recorder)] == [
        prediction(
            ids[0],
            rows[0],
            {"value": "no", "probabilities": {"no": 0.9, "yes": 0.1}},
            model="iris:2",
        ),
        prediction(
            ids[1],
            rows[1],
            {"value": "yes", "probabilities": {"no": 0.2, "yes": 0.8}},
            model="iris:2",
        ),
        prediction(
            ids[2],
            rows[2],
            {"value": "no", "probabilities": {"no": 0.5, "yes": 0.5}},
            model="iris:2",
        ),
    ]


def test_over_a_hundred_timed_rows_share_the_request_time(recorder):
    rows = [{"x": i % 3} for i in range(150)]
    app = PredictionLoggingMiddleware(
        json_app(lambda b: [0] * 150), recorder, id="hash+time"
    )

    result = run(call_asgi(app, orjson.dumps(rows)))

    records = flushed(recorder)
    stamp = records[0].occurred_at
    assert result.header("x-data-id-count") == "150"
    assert {r.occurred_at for r in records} == {stamp}
    assert [r.data_id for r in records] == [
        generate_hash_from_data(row, stamp) for row in rows
    ]


def test_over_a_hundred_rows_gives_only_a_count(recorder):
    rows = [{"x": i} for i in range(101)]
    app = PredictionLoggingMiddleware(json_app(lambda b: list(range(101))), recorder)

    result = run(call_asgi(app, orjson.dumps(rows)))

    assert result.header("x-data-id") is None
    assert result.header("x-data-id-count") == "101"
    records = flushed(recorder)
    assert [r.data_id for r in records] == [generate_hash_from_data(r) for r in rows]
    assert [r.prediction_data["value"] for r in records] == list(range(101))


def test_exactly_a_hundred_rows_still_listed(recorder):
    rows = [{"x": i} for i in range(100)]
    app = PredictionLoggingMiddleware(json_app(lambda b: list(range(100))), recorder)

    result = run(call_asgi(app, orjson.dumps(rows)))

    assert result.header("x-data-id").split(",") == [
        generate_hash_from_data(r) for r in rows
    ]
    assert result.header("x-data-id-count") is None


@pytest.mark.parametrize(
    ("cors_headers", "expected"),
    [
        ([(b"access-control-allow-origin", b"*")], "x-data-id"),
        (
            [
                (b"access-control-allow-origin", b"https://a.test"),
                (b"access-control-expose-headers", b"x-trace"),
            ],
            "x-trace, x-data-id",
        ),
        (
            [
                (b"access-control-allow-origin", b"*"),
                (b"access-control-expose-headers", b"X-Data-Id"),
            ],
            "X-Data-Id",
        ),
        ([], None),
    ],
)
def test_cors_response_exposes_the_id_header(recorder, cors_headers, expected):
    async def app(scope, receive, send):
        await receive()
        headers = [(b"content-type", b"application/json"), *cors_headers]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"1"})

    middleware = PredictionLoggingMiddleware(app, recorder)

    result = run(call_asgi(middleware, b'{"x": 1}'))

    assert result.header("access-control-expose-headers") == expected
    assert result.header("x-data-id") == generate_hash_from_data({"x": 1})


# -- the request body reaches the app unchanged ----------------------------------


def test_body_in_two_chunks_reaches_app_byte_identical(recorder):
    seen = []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen.append(message)
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"7"})

    payload = orjson.dumps({"a": "é" * 10, "b": [1, 2, 3]})
    chunks = [payload[:11], payload[11:]]

    run(call_asgi(PredictionLoggingMiddleware(app, recorder), chunks))

    assert seen == [
        {"type": "http.request", "body": chunks[0], "more_body": True},
        {"type": "http.request", "body": chunks[1], "more_body": False},
    ]
    [record] = flushed(recorder)
    assert record.features == {"a": "é" * 10, "b": [1, 2, 3]}
    assert record.prediction_data == {"value": 7}


def test_later_receive_passes_straight_through(recorder):
    disconnect = {"type": "http.disconnect"}
    messages = [{"type": "http.request", "body": b"{}", "more_body": False}, disconnect]
    got = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        pass

    async def app(scope, receive, send):
        got.append(await receive())
        got.append(await receive())

    middleware = PredictionLoggingMiddleware(app, recorder)

    run(middleware(http_scope(), receive, send))

    assert got[1] is disconnect


def test_mutated_body_buffer_does_not_change_the_record(recorder):
    async def app(scope, receive, send):
        await receive()
        buffer = bytearray(b'{"value": 1}')
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": buffer, "more_body": True})
        buffer[:] = b'{"value": 9}'
        await send({"type": "http.response.body", "body": b""})

    run(call_asgi(PredictionLoggingMiddleware(app, recorder), b'{"x": 1}'))

    [record] = flushed(recorder)
    assert record.prediction_data == {"value": 1}


# -- what is not captured is served exactly as without us -------------------------


def bare_and_wrapped(app, recorder, body, **options):
    bare = run(call_asgi(app, body, **options))
    wrapped = run(
        call_asgi(PredictionLoggingMiddleware(app, recorder), body, **options)
    )
    return bare, wrapped


def test_non_json_body_is_served_unchanged_with_one_warning(recorder, caplog):
    async def app(scope, receive, send):
        message = await receive()
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": message["body"][::-1]})

    async def lenient(scope, receive, send):
        message = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": message["body"]})

    caplog.set_level(logging.DEBUG, logger="mlf_middleware")
    for target in (app, lenient):
        bare, wrapped = bare_and_wrapped(target, recorder, b"not json {")
        assert wrapped.messages == bare.messages

    assert flushed(recorder) == []
    ours = [r for r in caplog.records if r.name.startswith("mlf_middleware")]
    assert all(r.levelno <= logging.WARNING for r in ours)
    assert len([r for r in ours if r.levelno == logging.WARNING]) <= 1
    assert all("not json" not in r.getMessage() for r in ours)


@pytest.mark.parametrize(
    ("method", "path", "headers", "body"),
    [
        ("GET", "/predict", JSON, b""),
        ("POST", "/predict", (("content-type", "text/plain"),), b'{"x": 1}'),
        ("POST", "/predict", (("content-type", "multipart/form-data"),), b"--x"),
        ("DELETE", "/predict", JSON, b'{"x": 1}'),
    ],
)
def test_uncaptured_requests_pass_through(recorder, method, path, headers, body):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    options = {"method": method, "path": path, "headers": headers}

    bare, wrapped = bare_and_wrapped(app, recorder, body, **options)

    assert wrapped.messages == bare.messages
    assert flushed(recorder) == []


def test_non_2xx_response_is_not_recorded(recorder):
    app = json_app(lambda b: {"detail": "bad"}, status=422)

    bare, wrapped = bare_and_wrapped(app, recorder, b'{"x": 1}')

    assert wrapped.messages == bare.messages
    assert flushed(recorder) == []


def test_non_json_response_is_not_recorded(recorder):
    app = json_app(lambda b: 1, content_type=b"text/html")

    bare, wrapped = bare_and_wrapped(app, recorder, b'{"x": 1}')

    assert wrapped.messages == bare.messages
    assert flushed(recorder) == []


def test_app_exception_is_reraised_unchanged(recorder):
    error = KeyError("boom")

    async def app(scope, receive, send):
        await receive()
        raise error

    middleware = PredictionLoggingMiddleware(app, recorder)

    with pytest.raises(KeyError) as caught:
        run(call_asgi(middleware, b'{"x": 1}'))

    assert caught.value is error
    assert flushed(recorder) == []


def test_disconnect_before_response_raises_nothing(recorder):
    async def app(scope, receive, send):
        while (await receive())["type"] != "http.disconnect":
            pass

    middleware = PredictionLoggingMiddleware(app, recorder)

    result = run(call_asgi(middleware, [b'{"x"'], disconnect_early=True))

    assert result.messages == []
    assert flushed(recorder) == []


def test_request_over_the_cap_is_served_and_not_recorded(recorder, caplog):
    app = json_app(lambda body: len(body["x"]))
    body = orjson.dumps({"x": "a" * 200})

    bare = run(call_asgi(app, body))
    wrapped = run(
        call_asgi(PredictionLoggingMiddleware(app, recorder, max_body_bytes=100), body)
    )

    assert wrapped.messages == bare.messages
    assert flushed(recorder) == []
    assert "too large" in caplog.text


def test_response_over_the_cap_is_recorded_as_truncated(recorder):
    app = json_app(lambda body: {"value": "b" * 200})
    middleware = PredictionLoggingMiddleware(app, recorder, max_body_bytes=100)

    result = run(call_asgi(middleware, b'{"x": 1}'))

    data_id = generate_hash_from_data({"x": 1})
    assert result.body == orjson.dumps({"value": "b" * 200})
    assert result.header("x-data-id") == data_id
    assert [essentials(r) for r in flushed(recorder)] == [
        prediction(
            data_id,
            {"x": 1},
            {"value": None, "error": "ResponseTooLarge"},
            raw={**RAW, "truncated": "response"},
        )
    ]


def test_too_deep_bodies_hit_the_depth_cap(recorder):
    deep = {"x": [[[[[1]]]]]}
    app = json_app(lambda body: {"value": [[[[[2]]]]]})
    middleware = PredictionLoggingMiddleware(app, recorder, max_depth=4)

    shallow = run(call_asgi(middleware, b'{"x": 1}'))
    nested = run(call_asgi(middleware, orjson.dumps(deep)))

    assert nested.header("x-data-id") is None
    assert [r.prediction_data for r in flushed(recorder)] == [
        {"value": None, "error": "ResponseTooDeep"}
    ]
    assert shallow.header("x-data-id") == generate_hash_from_data({"x": 1})


def test_gzip_response_is_recorded_decoded(recorder):
    packed = gzip.compress(b'{"value": 3}')

    async def app(scope, receive, send):
        await receive()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-encoding", b"gzip"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": packed})

    result = run(call_asgi(PredictionLoggingMiddleware(app, recorder), b'{"x": 1}'))

    assert result.body == packed
    assert [r.prediction_data for r in flushed(recorder)] == [{"value": 3}]


def test_response_before_body_read_is_not_captured(recorder):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"1"})

    bare, wrapped = bare_and_wrapped(app, recorder, b'{"x": 1}')

    assert wrapped.messages == bare.messages
    assert flushed(recorder) == []


# -- streaming and interleaving ----------------------------------------------------


def test_streamed_chunk_is_forwarded_before_the_next_exists(recorder):
    second_may_start = asyncio.Event()
    order = []

    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"va', "more_body": True})
        await asyncio.wait_for(second_may_start.wait(), 5)
        order.append("app produced second")
        await send({"type": "http.response.body", "body": b'lue": 5}'})

    async def scenario():
        middleware = PredictionLoggingMiddleware(app, recorder)
        sent = []

        async def receive():
            return {"type": "http.request", "body": b'{"x": 1}'}

        async def send(message):
            sent.append(message)
            if message.get("more_body"):
                order.append("client got first")
                second_may_start.set()

        await middleware(http_scope(), receive, send)
        return sent

    sent = run(scenario())

    assert order == ["client got first", "app produced second"]
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b'{"value": 5}'
    assert [r.prediction_data for r in flushed(recorder)] == [{"value": 5}]


def test_interleaved_requests_produce_unmixed_records(recorder):
    first_may_answer = asyncio.Event()

    async def app(scope, receive, send):
        body = orjson.loads((await receive())["body"])
        if body["n"] == 1:
            await asyncio.wait_for(first_may_answer.wait(), 5)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": orjson.dumps(body["n"] * 10)})
        if body["n"] == 2:
            first_may_answer.set()

    middleware = PredictionLoggingMiddleware(app, recorder)

    async def scenario():
        first = asyncio.create_task(call_asgi(middleware, b'{"n": 1}', path="/first"))
        await asyncio.sleep(0)  # let the first request start and park
        second = await call_asgi(middleware, b'{"n": 2}', path="/second")
        return await first, second

    first, second = run(scenario())

    assert first.header("x-data-id") == generate_hash_from_data({"n": 1})
    assert second.header("x-data-id") == generate_hash_from_data({"n": 2})
    assert [essentials(r) for r in flushed(recorder)] == [
        prediction(
            generate_hash_from_data({"n": 2}),
            {"n": 2},
            {"value": 20},
            raw={**RAW, "path": "/second"},
        ),
        prediction(
            generate_hash_from_data({"n": 1}),
            {"n": 1},
            {"value": 10},
            raw={**RAW, "path": "/first"},
        ),
    ]


# -- options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("paths", "captured"),
    [
        (None, ["/predict", "/v1/predict", "/admin/x"]),
        ("/predict", ["/predict"]),
        (["/predict", "/v1/*"], ["/predict", "/v1/predict"]),
        (["!/admin/*"], ["/predict", "/v1/predict"]),
        (["/*", "!/v1/*", "!/admin/*"], ["/predict"]),
    ],
)
def test_paths_select_with_globs_and_exclusions(recorder, paths, captured):
    middleware = PredictionLoggingMiddleware(
        json_app(lambda b: 1), recorder, paths=paths
    )

    got = [
        path
        for path in ("/predict", "/v1/predict", "/admin/x")
        if run(call_asgi(middleware, b'{"x": 1}', path=path)).header("x-data-id")
    ]

    assert got == captured
    assert len(flushed(recorder)) == len(captured)


def test_id_from_header_is_used_for_each_row(recorder):
    middleware = PredictionLoggingMiddleware(
        json_app(lambda b: [1, 2]), recorder, id="header:X-Ids"
    )
    headers = (*JSON, ("x-ids", "req-1.a, req-1.b"))

    result = run(call_asgi(middleware, b'[{"x": 1}, {"x": 2}]', headers=headers))

    assert result.header("x-data-id") == "req-1.a,req-1.b"
    assert [r.data_id for r in flushed(recorder)] == ["req-1.a", "req-1.b"]


def test_id_from_field_accepts_strings_and_integers(recorder):
    middleware = PredictionLoggingMiddleware(
        json_app(lambda b: [1, 2]), recorder, id="field:id"
    )

    result = run(call_asgi(middleware, b'[{"id": "a:1", "x": 1}, {"id": 42, "x": 2}]'))

    assert result.header("x-data-id") == "a:1,42"
    assert [r.features for r in flushed(recorder)] == [
        {"id": "a:1", "x": 1},
        {"id": 42, "x": 2},
    ]


@pytest.mark.parametrize(
    "bad", ["", "a b", "x" * 129, "semi;colon", "naïve", None, 1.5, True, [1]]
)
def test_invalid_request_id_is_replaced_by_the_hash(recorder, caplog, bad):
    middleware = PredictionLoggingMiddleware(
        json_app(lambda b: 1), recorder, id="field:id"
    )
    row = {"id": bad, "x": 1}

    result = run(call_asgi(middleware, orjson.dumps(row)))

    assert result.header("x-data-id") == generate_hash_from_data(row)


def test_missing_id_header_falls_back_to_hash(recorder):
    middleware = PredictionLoggingMiddleware(
        json_app(lambda b: 1), recorder, id="header:x-id"
    )

    result = run(call_asgi(middleware, b'{"x": 1}'))

    assert result.header("x-data-id") == generate_hash_from_data({"x": 1})


def test_hash_plus_time_and_random_ids(recorder):
    stamped = PredictionLoggingMiddleware(
        json_app(lambda b: 1), recorder, id="hash+time"
    )
    randomised = PredictionLoggingMiddleware(
        json_app(lambda b: 1), recorder, id="random"
    )

    first = run(call_asgi(stamped, b'{"x": 1}')).header("x-data-id")
    r1 = run(call_asgi(randomised, b'{"x": 1}')).header("x-data-id")
    r2 = run(call_asgi(randomised, b'{"x": 1}')).header("x-data-id")

    timed, *_ = flushed(recorder)
    assert first == generate_hash_from_data({"x": 1}, timed.occurred_at)
    assert first != generate_hash_from_data({"x": 1})
    assert len(r1) == len(r2) == 32
    assert r1 != r2


def test_callable_id_and_hooks(recorder):
    def features(body):
        return [{"q": v} for v in body["values"]]

    def outputs(body, rows):
        return [{"value": v} for v in body["o"]]

    middleware = PredictionLoggingMiddleware(
        json_app(lambda b: {"o": [5, 6]}),
        recorder,
        features=features,
        outputs=outputs,
        id=lambda row: f"q-{row['q']}",
    )

    result = run(call_asgi(middleware, b'{"values": [1, 2]}'))

    assert result.header("x-data-id") == "q-1,q-2"
    assert [
        (r.data_id, r.features, r.prediction_data["value"]) for r in flushed(recorder)
    ] == [("q-1", {"q": 1}, 5), ("q-2", {"q": 2}, 6)]


def test_failing_hook_serves_normally_and_records_nothing(recorder, caplog):
    def features(body):
        raise RuntimeError("user bug")

    app = json_app(lambda b: 1)
    middleware = PredictionLoggingMiddleware(app, recorder, features=features)

    bare = run(call_asgi(app, b'{"x": 1}'))
    wrapped = run(call_asgi(middleware, b'{"x": 1}'))

    assert wrapped.messages == bare.messages
    assert flushed(recorder) == []
    assert "RuntimeError" in caplog.text


def test_raw_data_has_headers_route_and_request_id(recorder):
    middleware = PredictionLoggingMiddleware(
        json_app(lambda b: 1),
        recorder,
        capture_headers=["X-Tenant", "Authorization", "cookie", "X-API-Key"],
    )
    headers = (
        *JSON,
        ("x-tenant", "acme"),
        ("authorization", "Bearer secret"),
        ("cookie", "s=1"),
        ("x-api-key", "k"),
        ("x-request-id", "r-77"),
    )

    run(call_asgi(middleware, b'{"x": 1}', headers=headers))

    [record] = flushed(recorder)
    assert record.raw_data == {
        **RAW,
        "request_id": "r-77",
        "headers": {"x-tenant": "acme"},
    }


def test_disabled_recorder_makes_a_pass_through():
    with memory_recorder(enabled=False) as rec:
        app = json_app(lambda b: 1)
        bare, wrapped = bare_and_wrapped(app, rec, b'{"x": 1}')

        assert wrapped.messages == bare.messages
        assert rec.stats()["captured"] == 0


def test_default_recorder_is_looked_up_per_request(monkeypatch):
    import mlf_middleware as mlf

    middleware = PredictionLoggingMiddleware(json_app(lambda b: 1))
    with memory_recorder(clock=FixedClock(T0)) as rec:
        monkeypatch.setattr("mlf_middleware.recorder._default", rec)

        run(call_asgi(middleware, b'{"x": 1}'))

        assert mlf.get_recorder() is rec
        assert [r.features for r in flushed(rec)] == [{"x": 1}]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("id", "hashish"),
        ("id", "header:"),
        ("paths", ["!"]),
        ("paths", [3]),
        ("max_body_bytes", 0),
        ("max_depth", -1),
        ("capture_headers", [None]),
        ("features", "rows"),
        ("feature_names", "abc"),
        ("model_version_fqn", ""),
        ("redact", [1]),
    ],
)
def test_bad_option_raises_naming_it(option, value):
    with pytest.raises(ConfigError, match=option):
        PredictionLoggingMiddleware(json_app(lambda b: 1), **{option: value})


# -- lifespan -----------------------------------------------------------------------


def test_lifespan_shutdown_flushes_off_the_event_loop():
    class Counting:
        enabled = True

        def __init__(self):
            self.flushed_on = []

        def flush(self, timeout=None):
            self.flushed_on.append(threading.current_thread())
            return True

    recorder = Counting()
    sent = []
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def app(scope, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                assert recorder.flushed_on == []
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def receive():
        return inbox.pop(0)

    async def send(message):
        sent.append(message["type"])

    middleware = PredictionLoggingMiddleware(app, recorder)

    run(middleware({"type": "lifespan"}, receive, send))

    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert len(recorder.flushed_on) == 1
    assert recorder.flushed_on[0] is not threading.main_thread()


def test_active_span_ids_land_in_raw_data(recorder):
    from opentelemetry import trace

    context = trace.SpanContext(trace_id=0x1234, span_id=0xABC, is_remote=False)
    middleware = PredictionLoggingMiddleware(json_app(lambda b: 1), recorder)

    with trace.use_span(trace.NonRecordingSpan(context)):
        run(call_asgi(middleware, b'{"x": 1}'))

    [record] = flushed(recorder)
    assert record.raw_data == {
        **RAW,
        "trace_id": "00000000000000000000000000001234",
        "span_id": "0000000000000abc",
    }


def test_last_data_ids_are_set_in_the_request_task(recorder):
    from mlf_middleware import last_data_ids

    middleware = PredictionLoggingMiddleware(json_app(lambda b: [1, 2]), recorder)
    seen = []

    async def outer(scope, receive, send):
        await middleware(scope, receive, send)
        seen.append(last_data_ids())

    run(call_asgi(outer, b'[{"x": 1}, {"x": 2}]'))

    assert seen == [
        [generate_hash_from_data({"x": 1}), generate_hash_from_data({"x": 2})]
    ]


def test_request_state_leaves_the_scope_when_done(recorder):
    scope = http_scope()
    middleware = PredictionLoggingMiddleware(json_app(lambda b: 1), recorder)

    run(call_asgi(middleware, b'{"x": 1}', scope=scope))

    assert EXCHANGE_KEY not in scope


def test_nested_middlewares_both_skip_an_actuals_request(recorder):
    from mlf_middleware.actuals import actuals_app

    inner = PredictionLoggingMiddleware(actuals_app(recorder), recorder)
    outer = PredictionLoggingMiddleware(inner, recorder)

    result = run(call_asgi(outer, b'{"data_id": "a", "value": 1}'))

    assert result.status == 202
    assert result.header("x-data-id") is None
    assert [type(r).__name__ for r in flushed(recorder)] == ["Actual"]


def test_put_and_gzip_request_bodies_are_captured(recorder):
    headers = (*JSON, ("content-encoding", "gzip"))
    middleware = PredictionLoggingMiddleware(json_app(lambda b: 1), recorder)

    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"2"})

    gzipped = PredictionLoggingMiddleware(app, recorder)

    run(call_asgi(middleware, b'{"x": 1}', method="PUT"))
    run(call_asgi(gzipped, gzip.compress(b'{"x": 2}'), headers=headers))

    assert [
        (r.features, r.prediction_data, r.raw_data["method"]) for r in flushed(recorder)
    ] == [
        ({"x": 1}, {"value": 1}, "PUT"),
        ({"x": 2}, {"value": 2}, "POST"),
    ]


def test_redacted_feature_keeps_the_id_of_the_raw_row(recorder):
    row = {"email": "a@b.c", "user": {"age": 41, "name": "Ann"}, "x": 1}
    middleware = PredictionLoggingMiddleware(
        json_app(lambda b: 1), recorder, redact=["email", "user.name"]
    )

    result = run(call_asgi(middleware, orjson.dumps(row)))

    [record] = flushed(recorder)
    assert result.header("x-data-id") == generate_hash_from_data(row)
    assert record.data_id == generate_hash_from_data(row)
    assert record.features == {
        "email": "[REDACTED]",
        "user": {"age": 41, "name": "[REDACTED]"},
        "x": 1,
    }


def test_gzip_bomb_response_stops_at_the_cap(recorder):
    bomb = gzip.compress(b'{"value": "' + b"0" * 5_000_000 + b'"}')

    async def app(scope, receive, send):
        await receive()
        headers = [(b"content-encoding", b"gzip")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": bomb})

    middleware = PredictionLoggingMiddleware(app, recorder, max_body_bytes=65536)

    result = run(call_asgi(middleware, b'{"x": 1}'))

    assert result.body == bomb
    [record] = flushed(recorder)
    assert record.prediction_data == {"value": None, "error": "ResponseTooLarge"}
    assert record.raw_data["truncated"] == "response"


@pytest.mark.parametrize(
    ("text", "features"),
    [
        (
            b'{"big": 123456789012345678901234567890}',
            {"big": 123456789012345678901234567890},
        ),
        (b'{"s": "\\ud800x"}', {"s": "\ud800x"}),
        (b'{"huge": 1e400}', {"huge": float("inf")}),
        (b'{"f": 0.1257302210933933, "n": 12}', {"f": 0.1257302210933933, "n": 12}),
    ],
)
def test_bodies_orjson_would_alter_keep_their_ids(recorder, text, features):
    app = PredictionLoggingMiddleware(json_app(lambda body: {"value": 1}), recorder)

    result = run(call_asgi(app, text))

    assert result.header("x-data-id") == generate_hash_from_data(features)
    [record] = flushed(recorder)
    assert record.data_id == generate_hash_from_data(features)


def test_unreadable_body_is_counted_as_dropped(recorder):
    async def app(scope, receive, send):
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b"{}"})

    wrapped = PredictionLoggingMiddleware(app, recorder)

    result = run(call_asgi(wrapped, b"{not json"))

    assert result.status == 200
    assert recorder.stats()["dropped_by_reason"] == {"unreadable_request": 1}


def test_malformed_capture_header_name_is_refused():
    with pytest.raises(ConfigError, match="capture_headers"):
        PredictionLoggingMiddleware(
            json_app(lambda b: 1), capture_headers=["bad header"]
        )
