"""The report as one self-contained HTML page with static SVG charts.

Nothing in the page is fetched when it is viewed: no script, no font, no
image from elsewhere; styles are inline and fonts are the viewer's own.
docs/report.md says why the charts are hand-written SVG.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from . import _svg
from ._tables import PSI_MAJOR, PSI_MODERATE, psi_status

__all__ = ["render"]

SHOWN_FEATURES = 15  # bars in the "worst drift" chart
HEAT_COLUMNS = 48  # latest windows shown in the drift table

BLUE, PALE, GREEN, AMBER, RED, GREY = (
    "#4f46e5",
    "#c7d2fe",
    "#059669",
    "#f59e0b",
    "#dc2626",
    "#94a3b8",
)
STATUS_COLOUR = {"stable": GREEN, "moderate": AMBER, "major": RED, "-": GREY}

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1e293b; background: #f8fafc; margin: 0; }
header, section, footer { max-width: 1140px; margin: 0 auto; padding: 16px 24px; }
header { border-bottom: 1px solid #e2e8f0; background: #fff; max-width: none; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 8px 0 12px; }
h3 { font-size: 15px; margin: 20px 0 8px; }
.muted { color: #64748b; }
.task { font-size: 12px; font-weight: 500; color: #475569; background: #e2e8f0;
        border-radius: 10px; padding: 2px 8px; vertical-align: middle; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 12px; }
.card { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px;
        padding: 10px 14px; min-width: 150px; }
.card b { display: block; font-size: 20px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr));
        gap: 12px; }
figure { margin: 0; background: #fff; border: 1px solid #e2e8f0;
         border-radius: 8px; padding: 8px; }
figcaption { font-weight: 600; margin: 0 0 4px 4px; }
svg.chart { display: block; max-width: 100%; height: auto; }
svg .tick { font-size: 11px; fill: #475569; }
svg .legend { font-size: 12px; fill: #334155; }
.scroll { overflow-x: auto; background: #fff; border: 1px solid #e2e8f0;
          border-radius: 8px; }
table.heat { border-collapse: collapse; font-size: 12px; }
table.heat th, table.heat td { padding: 3px 6px; text-align: right;
                               border-bottom: 1px solid #f1f5f9; }
table.heat th:first-child, table.heat td:first-child { text-align: left; }
.empty { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px;
         padding: 24px; }
"""


def _when(text: str | None, window: str = "second") -> str:
    if not text:
        return "-"
    return text[: {"day": 10, "hour": 16}.get(window, 19)].replace("T", " ")


def _axis_labels(starts: Sequence[str], window: str) -> list[str]:
    """Window starts as short as they can be while staying distinct."""
    if window == "day":
        same_year = len({s[:4] for s in starts}) == 1
        return [s[5:10] if same_year else s[:10] for s in starts]
    same_day = len({s[:10] for s in starts}) == 1
    return [s[11:16] if same_day else s[5:16].replace("T", " ") for s in starts]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _figure(caption: str, body: str, note: str = "") -> str:
    extra = f'<p class="muted">{escape(note)}</p>' if note else ""
    return f"<figure><figcaption>{escape(caption)}</figcaption>{body}{extra}</figure>"


def _cards(model: dict[str, Any]) -> str:
    s = model["summary"]
    if model["task"] == "regression":
        quality = [("MAE", s["mae"]), ("RMSE", s["rmse"])]
    else:
        quality = [("accuracy", s["accuracy"])]
    items = [
        ("predictions", f"{s['predictions']:,}"),
        ("with an actual", f"{s['with_actual']:,} ({_percent(s['coverage'])})"),
        *((n, "-" if v is None else f"{v:.4f}") for n, v in quality),
        ("latency p50 / p99", _latency(s)),
        ("failed predictions", f"{s['errors']:,}"),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><span class="muted">{escape(n)}</span>'
            f"<b>{escape(v)}</b></div>"
            for n, v in items
        )
        + "</div>"
    )


def _latency(figures: dict[str, Any]) -> str:
    p50, p99 = figures["latency_ms_p50"], figures["latency_ms_p99"]
    if p50 is None:
        return "-"
    return f"{_svg.number(p50)} / {_svg.number(p99)} ms"


def _window_charts(model: dict[str, Any], window: str) -> list[str]:
    windows = model["windows"]
    labels = _axis_labels([w["start"] for w in windows], window)
    joined = [w["with_actual"] for w in windows]
    rest = [w["predictions"] - w["with_actual"] for w in windows]
    notes = [
        f"{w['predictions']} predictions, coverage {_percent(w['coverage'])}"
        for w in windows
    ]
    charts = [
        _figure(
            "Predictions per window, and how many have an actual",
            _svg.bar_chart(
                "predictions per window",
                labels,
                [("with an actual", joined, BLUE), ("no actual yet", rest, PALE)],
                notes=notes,
            ),
        )
    ]
    if model["task"] == "regression":
        series = [
            ("MAE", [w["mae"] for w in windows], BLUE),
            ("RMSE", [w["rmse"] for w in windows], AMBER),
        ]
        charts.append(
            _figure(
                "Error per window (predictions with an actual)",
                _svg.line_chart(
                    "error per window", labels, series, low=0.0, dashed=("RMSE",)
                ),
            )
        )
    else:
        accuracy = [w["accuracy"] for w in windows]
        floor = min((a for a in accuracy if a is not None), default=0.0)
        charts.append(
            _figure(
                "Accuracy per window (predictions with an actual)",
                _svg.line_chart(
                    "accuracy per window",
                    labels,
                    [("accuracy", accuracy, GREEN)],
                    low=max(0.0, floor - 0.05),
                    high=1.0,
                    fmt=lambda v: f"{v * 100:.3g}%",
                ),
            )
        )
    charts.append(
        _figure(
            "Latency percentiles per window (ms)",
            _svg.line_chart(
                "latency per window",
                labels,
                [
                    ("p50", [w["latency_ms_p50"] for w in windows], BLUE),
                    ("p99", [w["latency_ms_p99"] for w in windows], RED),
                ],
                low=0.0,
            ),
        )
    )
    return charts


def _worst_drift_chart(model: dict[str, Any]) -> str:
    features = [f for f in model["features"] if f["max_psi"] is not None]
    shown = features[:SHOWN_FEATURES]
    if not shown:
        return _figure("Worst drift per feature", "<p>No drift figures.</p>")
    chart = _svg.hbar_chart(
        "worst PSI per feature",
        [f["name"] for f in shown],
        [f["max_psi"] for f in shown],
        [STATUS_COLOUR[psi_status(f["max_psi"])] for f in shown],
        marks=(PSI_MODERATE, PSI_MAJOR),
    )
    note = (
        f"Highest PSI of each feature over the windows; dashed lines at "
        f"{PSI_MODERATE} (moderate) and {PSI_MAJOR} (major)."
    )
    if len(features) > len(shown):
        note += f" {len(features) - len(shown)} less drifted features not shown."
    return _figure("Worst drift per feature (PSI)", chart, note)


def _heat(value: float | None) -> str:
    """A cell colour: white at 0, amber at 0.1, red from 0.25."""
    if value is None:
        return "#ffffff"
    if value < PSI_MODERATE:
        mix, start, end = value / PSI_MODERATE, (255, 255, 255), (253, 230, 138)
    else:
        mix = min((value - PSI_MODERATE) / (PSI_MAJOR - PSI_MODERATE), 1.0)
        start, end = (253, 230, 138), (248, 113, 113)
    rgb = (round(a + (b - a) * mix) for a, b in zip(start, end, strict=True))
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _drift_table(model: dict[str, Any], window: str) -> str:
    windows = model["windows"][-HEAT_COLUMNS:]
    head = "".join(f"<th>{escape(_when(w['start'], window))}</th>" for w in windows)
    rows = []
    for feature in model["features"]:
        cells = []
        for w in windows:
            value = w["drift"].get(feature["name"])
            text = "-" if value is None else f"{value:.3f}"
            cells.append(f'<td style="background:{_heat(value)}">{text}</td>')
        rows.append(
            f'<tr><td>{escape(feature["name"])} <span class="muted">'
            f"{escape(feature['kind'])}</span></td>{''.join(cells)}</tr>"
        )
    hidden = len(model["windows"]) - len(windows)
    note = f'<p class="muted">{hidden} earlier windows not shown.</p>' if hidden else ""

    return (
        '<div class="scroll"><table class="heat"><thead><tr><th>feature</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{note}"
    )


def _histograms(model: dict[str, Any], window: str) -> list[str]:
    figures = []
    for pair in model["histograms"]:
        axis = None
        if pair["ranges"] is not None:  # numeric: the bins' low ends
            axis = [
                label if span is None else _svg.number(span[0])
                for span, label in zip(pair["ranges"], pair["labels"], strict=True)
            ]
        chart = _svg.grouped_bars(
            f"distribution of {pair['feature']}",
            pair["labels"],
            [
                ("reference", pair["reference"], GREY),
                (f"window {_when(pair['window'], window)}", pair["current"], BLUE),
            ],
            axis_labels=axis,
        )
        caption = (
            f"{pair['feature']} ({pair['kind']}): PSI {pair['psi']:.3f}, "
            f"{psi_status(pair['psi'])}"
        )
        figures.append(_figure(caption, chart))
    return figures


def _reference_note(model: dict[str, Any], window: str) -> str:
    ref = model["reference"]
    if ref["source"] == "first window":
        where = f"the first window ({_when(ref['since'], window)} UTC)"
    else:
        since = _when(ref["since"]) if ref["since"] else "the start"
        until = _when(ref["until"]) if ref["until"] else "now"
        where = f"the reference range {since} to {until} UTC"
    return (
        f"Drift is the PSI of each feature against {where}, "
        f"{ref['predictions']:,} predictions: below {PSI_MODERATE} stable, "
        f"{PSI_MODERATE} to {PSI_MAJOR} moderate, above {PSI_MAJOR} major."
    )


def _no_drift(model: dict[str, Any]) -> str | None:
    """Why there are no drift figures, or None when there are."""
    ref = model["reference"]
    if not ref["predictions"]:
        return "The reference range holds no predictions of this model."
    if ref["source"] == "first window" and len(model["windows"]) == 1:
        return (
            "One window only, and it is the reference: no drift to show yet. "
            "A longer range, or --reference-since and --reference-until, "
            "gives drift figures."
        )
    return None


def _model_section(model: dict[str, Any], window: str) -> str:
    name = "(no model)" if model["model"] is None else model["model"]
    no_drift = _no_drift(model)
    parts = [
        f'<section class="model"><h2>{escape(name)} '
        f'<span class="task">{escape(model["task"])}</span></h2>',
        f'<p class="muted">{model["summary"]["predictions"]:,} predictions from '
        f"{escape(_when(model['first']))} to {escape(_when(model['last']))} UTC, "
        f"in {len(model['windows'])} {window} windows.</p>",
        _cards(model),
        '<div class="grid">',
        *_window_charts(model, window),
        _figure("Drift", f"<p>{escape(no_drift)}</p>")
        if no_drift
        else _worst_drift_chart(model),
        "</div>",
    ]
    if not no_drift:
        parts += [
            "<h3>Drift per feature and window</h3>",
            f'<p class="muted">{escape(_reference_note(model, window))}</p>',
            _drift_table(model, window),
            "<h3>Most drifted features: reference against their worst window</h3>",
            '<div class="grid">',
            *_histograms(model, window),
            "</div>",
        ]
    return "\n".join([*parts, "</section>"])


def _header(report: dict[str, Any], generated: datetime) -> str:
    facts = [f"{report['window']} windows (UTC)"]
    if report.get("store"):
        facts.insert(0, f"store {report['store']}")
    if report["since"] or report["until"]:
        facts.append(
            f"from {_when(report['since']) if report['since'] else 'the start'} "
            f"until {_when(report['until']) if report['until'] else 'now'}"
        )
    facts.append(f"generated {generated:%Y-%m-%d %H:%M} UTC")
    return (
        "<header><h1>How is the model doing?</h1>"
        f'<p class="muted">{escape(", ".join(facts))}</p></header>'
    )


def render(
    report: dict[str, Any],
    *,
    generated: datetime | None = None,
    empty_message: str = "No predictions in this store for that model and range.",
) -> str:
    """Return the whole HTML page for a report made by ``build_report``."""
    generated = generated or datetime.now(UTC)
    sections: Sequence[str] = [
        _model_section(model, report["window"]) for model in report["models"]
    ] or [f'<section><p class="empty">{escape(empty_message)}</p></section>']

    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            "<title>mlf-middleware report</title>",
            f"<style>{_STYLE}</style></head><body>",
            _header(report, generated),
            *sections,
            '<footer class="muted">Made by mlf-middleware report. Numeric '
            "features are binned into the reference's deciles, categorical ones "
            "by their 20 most frequent values; empty bins count as 0.0001."
            "</footer>",
            "</body></html>",
        ]
    )
