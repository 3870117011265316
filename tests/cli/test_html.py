"""The HTML report: self-contained, charts present, renders in headless Chromium."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlf_middleware.cli.html import render
from mlf_middleware.cli.report import build_report

T0 = datetime(2026, 1, 1, 10, tzinfo=UTC)
GENERATED = datetime(2026, 1, 2, tzinfo=UTC)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Quiet on a closed network; name resolution fails, so a page that tried to
# fetch anything would log a console error instead of reaching out.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
]
BLUE = 0x4F46E5  # html.BLUE: bars of joined predictions, current shares

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="needs Debian's chromium: apt-get update && apt-get install -y chromium",
)


def _rows(model: str, hours: int = 3) -> list[dict]:
    """Joined rows: 12 per hour, x drifting upwards, plan gaining 'pro'."""
    rows = []
    for hour in range(hours):
        for i in range(12):
            at = T0 + timedelta(hours=hour, minutes=i)
            numeric = model.startswith("reg")
            predicted = i * 0.5 if numeric else ("yes" if i % 4 else "no")
            actual = i * 0.5 + 0.25 * hour if numeric else "yes"
            rows.append(
                {
                    "record_id": f"{model}-{hour}-{i}",
                    "data_id": f"{hour}-{i}",
                    "model_version_fqn": model,
                    "occurred_at": at,
                    "features": {
                        "x": i + 3 * hour,
                        "plan": "pro" if i < 3 * hour else "basic",
                    },
                    "prediction_data": {"value": predicted},
                    "raw_data": None,
                    "latency_ms": 1.0 + i * 0.5 + hour,
                    "actual": None if i == 11 else {"value": actual, "occurred_at": at},
                }
            )
    return rows


@pytest.fixture
def page(tmp_path) -> Path:
    report = build_report(_rows("clf:1") + _rows("reg:1"))
    report["store"] = "sqlite:test.db"
    path = tmp_path / "report.html"
    path.write_text(render(report, generated=GENERATED), encoding="utf-8")
    return path


def test_page_is_self_contained(page):
    html = page.read_text()

    assert html.startswith("<!doctype html>")
    for needle in ("<script", "<link", "<img", "@import", "url(", "http:", "https:"):
        assert needle not in html
    assert not re.search(r"\s(src|href)=", html)


def test_page_holds_every_chart(page):
    html = page.read_text()

    # Per model: predictions, accuracy or error, latency, worst drift, and a
    # histogram pair for each of its two features.
    assert html.count('<svg class="chart"') == 12
    assert html.count('aria-label="accuracy per window"') == 1
    assert html.count('aria-label="error per window"') == 1
    assert html.count('aria-label="distribution of x"') == 2
    assert html.count('<table class="heat">') == 2
    assert "generated 2026-01-02 00:00 UTC" in html


def test_data_is_escaped():
    rows = _rows("<b>m</b>", hours=2)
    for row in rows:
        row["features"] = {"<script>alert(1)</script>": row["features"]["x"]}

    html = render(build_report(rows), generated=GENERATED)

    assert "<script" not in html
    assert "<b>m</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;m&lt;/b&gt;" in html


def test_empty_report_says_why():
    html = render(
        build_report([]), generated=GENERATED, empty_message="the store is empty"
    )

    assert '<p class="empty">the store is empty</p>' in html
    assert "<svg" not in html


def _chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _console(stderr: str) -> list[str]:
    """Chromium's console messages (it logs them as INFO:CONSOLE lines)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def _colours(png: bytes) -> Counter:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG; count its colours."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = {}, 8
    while pos < len(png):
        (size,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        chunks[kind] = chunks.get(kind, b"") + png[pos + 8 : pos + 8 + size]
        pos += 12 + size
    width, height, depth, colour, _, _, interlace = struct.unpack(
        ">IIBBBBB", chunks[b"IHDR"]
    )
    assert (depth, interlace, colour in (2, 6)) == (8, 0, True)
    bpp = 3 if colour == 2 else 4
    rows = _unfilter(zlib.decompress(chunks[b"IDAT"]), width * bpp, height, bpp)
    np = pytest.importorskip("numpy")
    rgb = np.frombuffer(b"".join(rows), np.uint8).reshape(-1, bpp)[:, :3]
    rgb = rgb.astype(np.uint32)
    packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    values, counts = np.unique(packed, return_counts=True)

    return Counter(dict(zip(values.tolist(), counts.tolist(), strict=True)))


def _unfilter(raw: bytes, stride: int, height: int, bpp: int) -> list[bytes]:
    """Undo PNG's per-row filters (None, Sub, Up, Average, Paeth)."""
    np = pytest.importorskip("numpy")
    data = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    prev = np.zeros(stride, np.uint8)
    rows = []
    for kind, line in zip(data[:, 0], data[:, 1:], strict=True):
        if kind == 0:
            row = line.copy()
        elif kind == 1:  # Sub: running sum per channel, modulo 256
            row = line.reshape(-1, bpp).cumsum(axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:  # Up
            row = line + prev
        else:
            row = np.array(_average_or_paeth(kind, line.tolist(), prev.tolist(), bpp))
            row = row.astype(np.uint8)
        rows.append(row.tobytes())
        prev = row

    return rows


def _average_or_paeth(kind: int, line: list, prev: list, bpp: int) -> list:
    out = [0] * len(line)
    for i, value in enumerate(line):
        left = out[i - bpp] if i >= bpp else 0
        up, corner = prev[i], prev[i - bpp] if i >= bpp else 0
        if kind == 3:
            out[i] = (value + (left + up) // 2) & 0xFF
            continue
        guess = left + up - corner
        a, b, c = abs(guess - left), abs(guess - up), abs(guess - corner)
        best = left if a <= b and a <= c else (up if b <= c else corner)
        out[i] = (value + best) & 0xFF
    return out


def test_pixel_decoder_reads_every_filter():
    # A 2x5 RGB image, one row per filter type, each row the same two pixels.
    pixels = bytes([10, 20, 30, 200, 100, 50])
    raw = b""
    prev = bytes(6)
    for kind in range(5):
        line = _filter(kind, pixels, prev)
        raw += bytes([kind]) + line
        prev = pixels

    rows = _unfilter(raw, 6, 5, 3)

    assert rows == [pixels] * 5


def _filter(kind: int, row: bytes, prev: bytes) -> bytes:
    out = []
    for i, value in enumerate(row):
        left = row[i - 3] if i >= 3 else 0
        up, corner = prev[i], prev[i - 3] if i >= 3 else 0
        guess = left + up - corner
        paeth = min(
            (abs(guess - left), 0, left),
            (abs(guess - up), 1, up),
            (abs(guess - corner), 2, corner),
        )[2]
        base = [0, left, up, (left + up) // 2, paeth][kind]
        out.append((value - base) & 0xFF)
    return bytes(out)


@needs_chromium
def test_chromium_renders_the_charts_without_console_errors(page, tmp_path):
    dom = _chromium(tmp_path, page, "--dump-dom")

    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _console(dom.stderr) == []
    assert dom.stdout.count('<svg class="chart"') == 12
    assert dom.stdout.count("<rect") > 100
    assert dom.stdout.count("<polyline") >= 4


@needs_chromium
def test_chromium_screenshot_is_not_blank(page, tmp_path):
    shot = tmp_path / "report.png"

    result = _chromium(
        tmp_path, page, f"--screenshot={shot}", "--window-size=1200,2000"
    )

    colours = _colours(shot.read_bytes())
    assert result.returncode == 0, result.stderr[-2000:]
    assert _console(result.stderr) == []
    assert colours.total() == 1200 * 2000
    assert len(colours) > 100  # text, anti-aliasing, chart colours
    assert colours[BLUE] > 2000  # the bars are drawn
    assert colours.most_common(1)[0][1] < 0.9 * colours.total()  # not one colour


@needs_chromium
def test_console_check_catches_a_failing_page(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!doctype html><img src='https://example.invalid/x.png'>"
        "<script>console.error('broken chart')</script>"
    )

    result = _chromium(tmp_path, bad, "--dump-dom")

    messages = _console(result.stderr)
    assert any("broken chart" in m for m in messages)


def test_single_window_says_there_is_no_drift_yet():
    html = render(build_report(_rows("clf:1", hours=1)), generated=GENERATED)

    assert "One window only, and it is the reference: no drift to show yet." in html
    assert html.count('<svg class="chart"') == 3
    assert '<table class="heat">' not in html
