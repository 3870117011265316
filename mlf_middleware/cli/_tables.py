"""The report as plain-text tables for a terminal (no dependency)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["format_report", "format_text", "psi_status"]

SHOWN_FEATURES = 10
PSI_MODERATE = 0.1
PSI_MAJOR = 0.25


def psi_status(value: float | None) -> str:
    """The usual reading of a PSI value."""
    if value is None:
        return "-"
    if value > PSI_MAJOR:
        return "major"
    return "moderate" if value >= PSI_MODERATE else "stable"


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def format_text(figures: dict[str, Any]) -> str:
    """Lay flat figures out as an aligned two-column table."""
    width = max(len(k) for k in figures)
    return "\n".join(f"{k:<{width}}  {_show(v)}" for k, v in figures.items())


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _when(text: str | None, window: str = "second") -> str:
    """``2026-01-31T12:00:00.000000Z`` -> ``2026-01-31 12:00`` and the like."""
    if not text:
        return "-"
    size = {"day": 10, "hour": 16}.get(window, 19)
    return text[:size].replace("T", " ")


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[int] = (0,)
) -> list[str]:
    """Aligned columns: those in ``left`` to the left, the rest to the right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(header), line(["-" * w for w in widths]), *map(line, rows)]


def _quality(figures: dict[str, Any]) -> str:
    if "mae" in figures:
        if figures["mae"] is None:
            return "no actuals to score yet"
        return f"MAE {figures['mae']:.4f}, RMSE {figures['rmse']:.4f}"
    if figures["accuracy"] is None:
        return "no actuals to score yet"
    return (
        f"accuracy {figures['accuracy']:.4f} "
        f"({figures['correct']} of {figures['scored']})"
    )


def _overview(model: dict[str, Any], store: str | None) -> list[str]:
    s = model["summary"]
    name = "(no model)" if model["model"] is None else model["model"]
    where = f", store {store}" if store else ""
    return [
        f"model {name} ({model['task']}){where}",
        f"{s['predictions']} predictions from {_when(model['first'])} "
        f"to {_when(model['last'])} UTC",
        f"{s['with_actual']} with an actual ({_percent(s['coverage'])}), {_quality(s)}",
        f"latency p50 {_ms(s['latency_ms_p50'])} ms, "
        f"p99 {_ms(s['latency_ms_p99'])} ms, {s['errors']} failed predictions",
    ]


def _window_table(model: dict[str, Any], window: str) -> list[str]:
    regression = model["task"] == "regression"
    quality = ["MAE", "RMSE"] if regression else ["accuracy"]
    header = [
        "window (UTC)",
        "predictions",
        "with actual",
        "coverage",
        *quality,
        "p50 ms",
        "p99 ms",
        "failed",
        "most drifted",
    ]
    first_is_reference = model["reference"]["source"] == "first window"
    rows = []
    for i, w in enumerate(model["windows"]):
        scores = [w["mae"], w["rmse"]] if regression else [w["accuracy"]]
        rows.append(
            [
                _when(w["start"], window),
                str(w["predictions"]),
                str(w["with_actual"]),
                _percent(w["coverage"]),
                *map(_show, scores),
                _ms(w["latency_ms_p50"]),
                _ms(w["latency_ms_p99"]),
                str(w["errors"]),
                "(reference)"
                if i == 0 and first_is_reference
                else _most_drifted(w["drift"]),
            ]
        )
    return _table(header, rows, left=(0, len(header) - 1))


def _most_drifted(drift: dict[str, float | None]) -> str:
    scored = [(v, k) for k, v in drift.items() if v is not None]
    if not scored:
        return "-"
    value, name = max(scored, key=lambda item: (item[0], item[1]))
    return f"{name} {value:.3f}" if value > 0 else "-"


def _drift_table(model: dict[str, Any], window: str) -> list[str]:
    ref = model["reference"]
    if not ref["predictions"]:
        return ["drift: the reference range holds no predictions of this model"]
    first = ref["source"] == "first window"
    if first and len(model["windows"]) == 1:
        return [
            "drift: one window only, and it is the reference: nothing to compare yet",
            "(a longer range, or --reference-since/--reference-until, gives drift"
            " figures)",
        ]
    size = window if first else "second"
    since = _when(ref["since"], size) if ref["since"] else "the start"
    until = _when(ref["until"], size) if ref["until"] else "now"
    span = f"{since} to {until} UTC"
    lines = [
        f"drift (PSI) against {'the first window' if first else 'the reference'}"
        f" ({span}, {ref['predictions']} predictions)",
        f"below {PSI_MODERATE} stable, {PSI_MODERATE} to {PSI_MAJOR} moderate, "
        f"above {PSI_MAJOR} major",
    ]
    latest = model["windows"][-1]["drift"]
    shown = model["features"][:SHOWN_FEATURES]
    rows = [
        [
            f["name"],
            f["kind"],
            _psi(latest.get(f["name"])),
            _psi(f["max_psi"]),
            _when(f["max_psi_window"], window),
            psi_status(f["max_psi"]),
        ]
        for f in shown
    ]
    header = ["feature", "kind", "latest", "max", "max in window", "status"]
    lines += _table(header, rows, left=(0, 1, 4, 5))
    hidden = len(model["features"]) - len(shown)
    if hidden:
        lines.append(
            f"... and {hidden} more features, less drifted "
            "(--format json or --html lists them all)"
        )
    return lines


def _psi(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_report(report: dict[str, Any]) -> str:
    """The report as text: an overview, a table of windows, a drift table."""
    blocks = []
    for model in report["models"]:
        lines = _overview(model, report.get("store"))
        lines += ["", *_window_table(model, report["window"])]
        lines += ["", *_drift_table(model, report["window"])]
        blocks.append("\n".join(lines))

    return "\n\n".join(blocks)
