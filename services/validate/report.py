"""The validation report: verdicts per prediction, the numbers behind them, the plots.

Every assay returns an :class:`AssayResult`: its predictions, each with a verdict
computed from the simulation in the same run (never stored), the measured value, the
criterion it was held to and the numbers behind it; summary numbers; plot series
(kept out of the JSON); notes. :func:`write_report` writes ``report.json`` (machine
readable, schema ``engs-validate`` v1) and ``report.md`` (the same content for people,
with the plots embedded by relative path).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import msgspec

SCHEMA = "engs-validate"
SCHEMA_VERSION = 1


class Prediction(msgspec.Struct, kw_only=True):
    """One falsifiable prediction and its verdict."""

    id: str
    """Short stable identifier, e.g. ``lesion.D.no_adaptation``."""
    statement: str
    """What the seed (or the literature) predicts, in words."""
    criterion: str
    """The test the simulation is held to, with its thresholds."""
    measured: str
    """What was measured, in words and numbers."""
    passed: bool
    numbers: dict[str, Any] = msgspec.field(default_factory=dict)


class AssayResult(msgspec.Struct, kw_only=True):
    name: str
    title: str
    method: str
    """How the assay runs, in a few sentences (protocol, read-outs, choices)."""
    predictions: list[Prediction]
    numbers: dict[str, Any] = msgspec.field(default_factory=dict)
    notes: list[str] = msgspec.field(default_factory=list)
    series: dict[str, Any] = msgspec.field(default_factory=dict)
    """Plot data (lists of floats); not written to report.json."""
    plots: list[str] = msgspec.field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def passed(self) -> bool:
        return all(p.passed for p in self.predictions)


def _clean(x: Any) -> Any:
    """JSON-safe numbers: numpy scalars to Python, non-finite floats to strings."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and callable(x.item) and not isinstance(x, str):
        try:
            x = x.item()
        except (TypeError, ValueError):
            return str(x)
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def fmt(x: Any, digits: int = 3) -> str:
    """A number for the Markdown report: ``digits`` decimals, trailing zeros dropped,
    scientific notation for very small or very large magnitudes."""
    if isinstance(x, bool) or x is None or isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if not math.isfinite(x) or x == 0.0:
            return str(x) if x != 0.0 else "0"
        if abs(x) < 10.0**-digits or abs(x) >= 1e6:
            return f"{x:.{digits}g}"
        return f"{x:.{digits}f}".rstrip("0").rstrip(".")
    if isinstance(x, list | tuple):
        return "[" + ", ".join(fmt(v, digits) for v in x) + "]"
    return str(x)


def to_json(results: list[AssayResult], meta: dict[str, Any]) -> dict[str, Any]:
    assays = []
    for r in results:
        assays.append(
            {
                "name": r.name,
                "title": r.title,
                "passed": r.passed,
                "method": r.method,
                "elapsed_s": r.elapsed_s,
                "predictions": [msgspec.to_builtins(p) for p in r.predictions],
                "numbers": r.numbers,
                "notes": r.notes,
                "plots": r.plots,
            }
        )
    doc = {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        **meta,
        "passed": all(r.passed for r in results),
        "predictions_total": sum(len(r.predictions) for r in results),
        "predictions_failed": sum(1 for r in results for p in r.predictions if not p.passed),
        "assays": assays,
    }
    cleaned: dict[str, Any] = _clean(doc)
    return cleaned


def to_markdown(results: list[AssayResult], meta: dict[str, Any]) -> str:
    total = sum(len(r.predictions) for r in results)
    failed = [(r, p) for r in results for p in r.predictions if not p.passed]
    lines = [
        "# ENGS neuro-psychometric profile (`engs validate`)",
        "",
        f"Run: {'quick' if meta.get('quick') else 'full'} · seed {meta.get('seed')} · "
        f"{meta.get('elapsed_s', 0.0):.0f} s wall · lattice {meta.get('lattice')} · "
        f"{meta.get('ticks_per_cycle')} physics ticks per control cycle · "
        f"value model driving D: `{meta.get('value_model')}` · physics damping "
        f"{meta.get('physics', {}).get('damping')} /s · area neurochemistry "
        f"{'on' if meta.get('area_model') else 'off'}.",
        "",
        f"**{total - len(failed)} of {total} predictions pass"
        + (f"; {len(failed)} fail.**" if failed else ".**"),
        "",
    ]
    if meta.get("not_run"):
        lines += [
            "> `--quick` runs fewer assays, each at full strength, so every verdict it "
            "reports is the full run's. Not run here: "
            + ", ".join(f"`{a}`" for a in meta["not_run"])
            + ".",
            "",
        ]
    if meta.get("plots_note"):
        lines += [f"> {meta['plots_note']}", ""]
    lines += ["| assay | prediction | verdict | measured |", "|---|---|---|---|"]
    for r in results:
        for p in r.predictions:
            verdict = "PASS" if p.passed else "**FAIL**"
            lines.append(f"| {r.name} | `{p.id}` | {verdict} | {_one_line(p.measured)} |")
    lines.append("")
    for r in results:
        lines += [
            f"## {r.title}",
            "",
            r.method,
            "",
            f"Verdict: **{'PASS' if r.passed else 'FAIL'}** ({r.elapsed_s:.1f} s).",
            "",
        ]
        for p in r.predictions:
            lines += [
                f"### {'PASS' if p.passed else 'FAIL'} — `{p.id}`",
                "",
                f"- Prediction: {p.statement}",
                f"- Criterion: {p.criterion}",
                f"- Measured: {p.measured}",
                "",
            ]
        if r.numbers:
            lines += ["Numbers:", "", "| quantity | value |", "|---|---|"]
            for k, v in _flatten(r.numbers):
                lines.append(f"| {k} | {fmt(v)} |")
            lines.append("")
        for note in r.notes:
            lines += [f"> {note}", ""]
        for plot in r.plots:
            lines += [f"![{Path(plot).stem}]({plot})", ""]
    return "\n".join(lines)


def _one_line(s: str) -> str:
    s = s.replace("|", "/").replace("\n", " ")
    return s if len(s) <= 160 else s[:157] + "..."


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flatten(v, key + ".")
        else:
            out.append((key, v))
    return out


def write_report(out_dir: Path, results: list[AssayResult], meta: dict[str, Any]) -> None:
    """Write report.json and report.md into ``out_dir`` (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = to_json(results, meta)
    (out_dir / "report.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(to_markdown(results, meta) + "\n", encoding="utf-8")
