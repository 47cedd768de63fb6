"""The orchestrator's config section: cross-field rules fail naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from engs.shared.config import load_config
from engs.shared.errors import ConfigError


def _load(tmp_path: Path, toml: str) -> None:
    path = tmp_path / "engs.toml"
    path.write_text(toml, encoding="utf-8")
    load_config(path, env={})


def test_defaults_load() -> None:
    oc = load_config(env={}).orchestrator
    assert oc.dt == 0.01
    assert oc.coupling.x_eq == (0.5, 0.5, 0.3, 1.0)


def test_nap_band_must_be_ordered(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, "[orchestrator.nap]\nenter_below = 0.95\n")
    assert str(info.value) == (
        "invalid configuration: `enter_below` < `exit_at` expected, got 0.95 and 0.9"
        f" - at `$.orchestrator.nap` (in {tmp_path / 'engs.toml'})"
    )


def test_panic_band_must_be_ordered(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"`panic_clear_below` < `panic_above` expected"):
        _load(tmp_path, "[orchestrator.priorities]\npanic_clear_below = 0.99\n")


def test_atp_drains_cannot_make_consumption_negative(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, "[orchestrator.coupling]\nphi_ad_nmu_s = 5000.0\n")
    assert "got 2740 > 1600 - at `$.orchestrator`" in str(info.value)


def test_unknown_fields_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Object contains unknown field `lamda_d` - at"):
        _load(tmp_path, "[orchestrator.coupling]\nlamda_d = 0.2\n")
