"""``engs validate`` end to end through the module function the CLI calls."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from engs.services.validate import main, plots, risk, stability
from engs.shared.config import load_config


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    main.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tmp"
    code = main.run_args(load_config(env={}), _args("--quick", "--out", str(out), "--jobs", "2"))
    doc = json.loads((out / "report.json").read_text())
    stdout, stderr = capsys.readouterr()
    assert doc["schema"] == "engs-validate" and doc["quick"] is True
    assert [a["name"] for a in doc["assays"]] == list(main.QUICK_ASSAYS)
    preds = [p for a in doc["assays"] for p in a["predictions"]]
    assert len(preds) == doc["predictions_total"] >= 15
    # the exit code, the JSON and the printed lines all say the same thing
    failed = [p["id"] for p in preds if not p["passed"]]
    assert doc["predictions_failed"] == len(failed)
    assert code == (1 if failed else 0)
    for p in preds:
        assert f"{'PASS' if p['passed'] else 'FAIL'}  {p['id']}: " in stdout
    # progress on stderr: assay, what is running, elapsed
    assert "[engs validate" in stderr and "lesions: started" in stderr
    # plots: every one listed exists, is a PNG and is referenced by report.md
    md = (out / "report.md").read_text()
    names = [name for a in doc["assays"] for name in a["plots"]]
    assert len(names) >= 4
    for name in names:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in md
    for p in preds:
        assert f"`{p['id']}`" in md
    for name in set(main.ASSAYS) - set(main.QUICK_ASSAYS):
        assert f"`{name}`" in md.split("Not run here:", 1)[1].split("\n", 1)[0]


def test_quick_selects_assays_and_never_weakens_them(monkeypatch: pytest.MonkeyPatch) -> None:
    # a quick verdict must be the full run's verdict: the same parameters, fewer assays
    assert main.selected_assays(True, None) == list(main.QUICK_ASSAYS)
    assert main.selected_assays(False, None) == list(main.ASSAYS)
    assert main.selected_assays(True, ["stability", "rpe"]) == ["stability"]
    seen: list[object] = []

    def spy(*args: object, **kwargs: object) -> None:
        seen.append(args[1])
        raise RuntimeError("stop")

    monkeypatch.setattr(stability, "run", spy)
    for quick in (True, False):
        main.run_assays(load_config(env={}), quick=quick, only=["stability"])
    assert seen == [stability.Params(), stability.Params()]


def test_without_matplotlib_the_text_report_is_still_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plots, "available", lambda: (False, "ModuleNotFoundError: matplotlib"))
    out = tmp_path / "r"
    code = main.run_args(
        load_config(env={}), _args("--quick", "--only", "risk", "--out", str(out), "--jobs", "1")
    )
    _, stderr = capsys.readouterr()
    assert "matplotlib is not installed" in stderr and "engs[validate]" in stderr
    doc = json.loads((out / "report.json").read_text())
    assert doc["plots"] is False and doc["assays"][0]["plots"] == []
    assert not list(out.glob("*.png"))
    assert "matplotlib is not installed" in (out / "report.md").read_text()
    assert code == (0 if doc["passed"] else 1)


def test_an_assay_that_raises_is_a_failed_prediction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(risk, "run", broken)
    code = main.run_args(
        load_config(env={}), _args("--quick", "--only", "risk", "--out", str(tmp_path))
    )
    doc = json.loads((tmp_path / "report.json").read_text())
    assert code == 1
    (pred,) = doc["assays"][0]["predictions"]
    assert pred["id"] == "risk.ran" and not pred["passed"]
    assert "RuntimeError: boom" in pred["measured"]
