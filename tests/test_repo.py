"""Repository promises: the README's first lines give the two commands, and CI runs
exactly the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block is not None and text.index(block.group(0)) < 200, "commands must come first"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_run_and_test_commands() -> None:
    run, test = _readme_commands()
    assert run.startswith("python3 -m venv .venv") and run.endswith("engs up")
    assert test.startswith("python3 -m venv .venv") and "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    _, test = _readme_commands()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test in ci
    assert any(line.startswith(".venv/bin/ruff check") for line in ci)
    assert ".venv/bin/mypy" in ci
