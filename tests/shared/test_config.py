"""Configuration: defaults need no file; every kind of bad value fails with a message
naming the field path, and overrides name the variable or flag they came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from engs.shared.config import Config, is_loopback, load_config, parse_addr
from engs.shared.errors import ConfigError


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    p = tmp_path / "engs.toml"
    p.write_text(text, encoding="utf-8")
    return load_config(p, env=env or {})


def test_defaults_load_without_a_file() -> None:
    cfg = load_config(env={})
    assert cfg == Config()
    assert cfg.instance == "engs"
    assert cfg.signals.addr == "127.0.0.1:7411" and cfg.metrics.addr == "127.0.0.1:9411"
    assert cfg.physics.backend == "auto" and cfg.physics.tick_hz == 1000.0
    assert cfg.orchestrator.cycle_hz == 100.0 and cfg.shm.max_areas >= len(cfg.physics.areas)


def test_a_file_overrides_defaults(tmp_path: Path) -> None:
    cfg = _load(tmp_path, 'instance = "lab"\n[physics]\ntick_hz = 500\nshape = [8, 8, 8]\n')
    assert cfg.instance == "lab" and cfg.physics.tick_hz == 500 and cfg.physics.shape == [8, 8, 8]
    assert cfg.physics.areas == Config().physics.areas


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[physics]\ntick_hz = -1", "Expected `float` > 0.0 - at `$.physics.tick_hz`"),
        ('[physics]\ntick_hz = "fast"', "Expected `float`, got `str` - at `$.physics.tick_hz`"),
        ("[physics]\ntick_hz = true", "Expected `float`, got `bool` - at `$.physics.tick_hz`"),
        ("[physics]\nwarp = 9", "Object contains unknown field `warp` - at `$.physics`"),
        ("[warp]\nx = 1", "Object contains unknown field `warp` (in "),
        ('[physics]\nbackend = "tpu"', "Invalid enum value 'tpu' - at `$.physics.backend`"),
        ("[physics]\nshape = [64, 1]", "Expected `int` >= 2 - at `$.physics.shape[1]`"),
        ("[physics]\nshape = []", "Expected `array` of length >= 1 - at `$.physics.shape`"),
        (
            "[physics]\nshape = [2,2,2,2,2,2,2,2,2,2]",
            "Expected `array` of length <= 9 - at `$.physics.shape`",
        ),
        (
            '[physics]\nareas = ["a", "a"]',
            "`areas` must be unique, ['a'] repeated - at `$.physics`",
        ),
        ('[physics]\nareas = ["Bad Name"]', "- at `$.physics.areas[0]`"),
        (
            '[physics]\nshape = [2, 8]\nareas = ["a", "b", "c"]',
            "`areas`: 3 areas cannot split a first axis of 2 nodes - at `$.physics`",
        ),
        (
            '[shm]\nmax_areas = 2\n[physics]\nareas = ["a", "b", "c"]',
            "3 physics areas exceed shm.max_areas=2 - at `$.physics.areas`",
        ),
        ("[shm]\nmax_areas = 0", "Expected `int` >= 1 - at `$.shm.max_areas`"),
        ("[oracle]\npoll_hz = 10", "Expected `float` >= 200.0 - at `$.oracle.poll_hz`"),
        (
            '[signals]\naddr = "127.0.0.1:70000"',
            "`addr`: port must be in 1..65535, got 70000 in '127.0.0.1:70000' - at `$.signals`",
        ),
        (
            '[metrics]\naddr = "localhost"',
            "`addr`: expected host:port, got 'localhost' - at `$.metrics`",
        ),
        ('instance = "no/slash"', "- at `$.instance`"),
    ],
)
def test_bad_values_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, text)
    assert message in str(exc.value)
    assert str(tmp_path / "engs.toml") in str(exc.value)


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"engs.toml: not valid TOML: .*line 1"):
        _load(tmp_path, "[physics\n")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*nope.toml: No such file"):
        load_config(tmp_path / "nope.toml", env={})


def test_env_overrides_and_their_errors(tmp_path: Path) -> None:
    env = {
        "ENGS_INSTANCE": "envy",
        "ENGS_SIGNAL_ADDR": "[::1]:7500",
        "ENGS_METRICS_ADDR": "0.0.0.0:9500",
        "ENGS_BACKEND": "numpy",
    }
    cfg = load_config(env=env)
    assert (cfg.instance, cfg.signals.addr, cfg.metrics.addr, cfg.physics.backend) == (
        "envy",
        "[::1]:7500",
        "0.0.0.0:9500",
        "numpy",
    )
    with pytest.raises(ConfigError) as exc:
        load_config(env={"ENGS_SIGNAL_ADDR": "nope"})
    assert str(exc.value) == (
        "invalid configuration: `addr`: expected host:port, got 'nope' - at `$.signals` "
        "(ENGS_SIGNAL_ADDR sets `$.signals.addr`)"
    )
    with pytest.raises(
        ConfigError,
        match=r"Invalid enum value 'tpu' - at `\$.physics.backend` "
        r"\(ENGS_BACKEND sets `\$.physics.backend`\)",
    ):
        load_config(env={"ENGS_BACKEND": "tpu"})


def test_engs_config_env_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "from-env.toml"
    p.write_text('instance = "viaenv"\n', encoding="utf-8")
    assert load_config(env={"ENGS_CONFIG": str(p)}).instance == "viaenv"


def test_flags_beat_env_beat_file(tmp_path: Path) -> None:
    p = tmp_path / "f.toml"
    p.write_text('instance = "file"\n', encoding="utf-8")
    assert load_config(p, env={}).instance == "file"
    assert load_config(p, env={"ENGS_INSTANCE": "env"}).instance == "env"
    cfg = load_config(
        p, env={"ENGS_INSTANCE": "env"}, overrides={"--instance": (("instance",), "flag")}
    )
    assert cfg.instance == "flag"
    with pytest.raises(ConfigError, match=r"--instance sets `\$.instance`"):
        load_config(env={}, overrides={"--instance": (("instance",), "bad name")})


def test_addr_helpers() -> None:
    assert parse_addr("127.0.0.1:7411") == ("127.0.0.1", 7411)
    assert parse_addr("[::1]:80") == ("::1", 80)
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("example")
    for bad in ("7411", ":7411", "h:x", "h:0"):
        with pytest.raises(ValueError):
            parse_addr(bad)
