"""The ``[orchestrator.areas]`` section: defaults, round trip, and errors naming fields."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from engs.shared.config import Config, load_config
from engs.shared.errors import ConfigError


def _load(tmp_path: Path, toml: str) -> Config:
    path = tmp_path / "engs.toml"
    path.write_text(toml, encoding="utf-8")
    return load_config(path, env={})


def test_defaults_and_a_lossless_round_trip(tmp_path: Path) -> None:
    ac = load_config(env={}).orchestrator.areas
    assert ac.enabled and ac.projections_file == "" and ac.default_role == "association"
    assert len(ac.clearance_per_s) == 7 and ac.homeostasis.lr == 1e-3
    cfg = _load(
        tmp_path,
        """
[orchestrator.areas]
roles = { v1 = "sensory" }
[orchestrator.areas.drivers]
OXT = { safety = 0.8 }
[[orchestrator.areas.projections]]
source = "vta"
target = "*"
""",
    )
    assert cfg.orchestrator.areas.projections[0].nt == []
    # the session log stores the config as builtins; replay converts it back
    assert msgspec.convert(msgspec.to_builtins(cfg), Config) == cfg


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[orchestrator.areas.receptors]\nrange_low = 0.7\n",
         "`range_low` < `range_high` expected, got 0.7 and 0.6 - at "
         "`$.orchestrator.areas.receptors`"),
        ("[orchestrator.areas.homeostasis]\ngain_min = 5.0\n",
         "`gain_min` < `gain_max` expected, got 5.0 and 4.0 - at "
         "`$.orchestrator.areas.homeostasis`"),
        ("[orchestrator.areas]\nclearance_per_s = [1.0, 2.0]\n",
         "Expected `array` of length >= 7 - at `$.orchestrator.areas.clearance_per_s`"),
        ("[orchestrator.areas.drivers]\nXYZ = { dopamine = 1.0 }\n",
         "Invalid enum value 'XYZ' - at `key` in `$.orchestrator.areas.drivers`"),
        ("[orchestrator.areas.drivers]\nDA = { mood = 1.0 }\n",
         "Invalid enum value 'mood' - at `key` in `$.orchestrator.areas.drivers[...]`"),
        ("[[orchestrator.areas.projections]]\nsource = 'vta'\ntarget = 'Limbic'\n",
         "Expected `str` matching regex"),
        ("[orchestrator.areas]\nbind_fraction = 1.0\n",
         "Expected `float` < 1.0 - at `$.orchestrator.areas.bind_fraction`"),
    ],
)  # fmt: skip
def test_bad_values_fail_naming_the_field(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, toml)
    assert message in str(info.value)
