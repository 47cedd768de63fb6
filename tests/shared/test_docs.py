"""Documentation generated from code must match the code."""

from __future__ import annotations

from pathlib import Path

from engs.shared.layout import describe

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_layout_table_matches_the_layout() -> None:
    text = (DOCS / "shm-layout.md").read_text(encoding="utf-8")
    table = text.split("<!-- layout:begin -->\n", 1)[1].split("<!-- layout:end -->", 1)[0]
    assert table.strip() == describe(16).strip()


def test_config_reference_matches_the_structs() -> None:
    from engs.shared.config_doc import describe as describe_config

    text = (DOCS / "config.md").read_text(encoding="utf-8")
    table = text.split("<!-- config:begin -->\n", 1)[1].split("<!-- config:end -->", 1)[0]
    assert table.strip() == describe_config().strip()
