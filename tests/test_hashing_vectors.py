"""The published vectors, the Node.js reference and cross-process stability."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from mlf_middleware.hashing import (
    NAMESPACE,
    canonical_json,
    format_timestamp,
    generate_hash_from_data,
    normalize,
)

DOCS = Path(__file__).resolve().parent.parent / "docs"
VECTORS = json.loads((DOCS / "data_id_vectors.json").read_text(encoding="utf-8"))


def _timestamp(vector: dict) -> datetime | None:
    text = vector["timestamp"]
    return None if text is None else datetime.fromisoformat(text)


def test_vectors_file_has_at_least_30_distinct_vectors():
    names = [v["name"] for v in VECTORS["vectors"]]

    assert len(names) >= 30
    assert len(set(names)) == len(names)
    assert VECTORS["namespace"] == str(NAMESPACE)


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_vector_text_and_id(vector):
    features = json.loads(vector["input"])
    timestamp = _timestamp(vector)

    text = canonical_json(normalize(features))
    if timestamp is not None:
        text += "|" + format_timestamp(timestamp)

    assert text == vector["text"]
    assert generate_hash_from_data(features, timestamp) == vector["data_id"]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_reference_reproduces_every_vector():
    script, vectors = DOCS / "data_id_reference.mjs", DOCS / "data_id_vectors.json"

    result = subprocess.run(
        ["node", str(script), str(vectors)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ok: {len(VECTORS['vectors'])} vectors\n"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_reference_hashes_stdin():
    result = subprocess.run(
        ["node", str(DOCS / "data_id_reference.mjs")],
        input='{"feature1": 3.33, "feature2": "class1"}',
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.stdout == "e4ff3f12e57e53cab6f6281c58393b6b\n"


# Values whose Python hash differs between processes (str, frozenset order)
# or whose repr differs between numpy versions: the ids must not.
_CHILD = """
import json, sys
from datetime import datetime, timezone
import numpy as np
from mlf_middleware.hashing import generate_hash_from_data
cases = [
    {"b": 1, "a": "x", "c": [1.5, None]},
    {"tags": {"red", "green", "blue", "x1", "x2", "x3"}},
    {"f": frozenset({"k", "l", "m"}), "n": {3, 1, 2}},
    {frozenset({"p", "q"}): 1, ("t", 2): 2},
    {"np": np.float32(0.1), "i": np.int64(7), "a": np.arange(3)},
    {np.int64(1): 0.25, np.int64(0): 0.75},
]
stamp = datetime(2024, 1, 1, tzinfo=timezone.utc)
ids = [generate_hash_from_data(c) for c in cases]
ids += [generate_hash_from_data(c, stamp, scheme="mlfoundry") for c in cases[:3]]
json.dump(ids, sys.stdout)
"""


def _ids_with_seed(seed: str) -> list[str]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    result = subprocess.run(
        [sys.executable, "-c", _CHILD],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout)


def test_ids_are_the_same_under_every_hash_seed():
    runs = [_ids_with_seed(seed) for seed in ("0", "1", "12345", "random")]

    assert all(run == runs[0] for run in runs)
    assert len(set(runs[0])) == len(runs[0])
