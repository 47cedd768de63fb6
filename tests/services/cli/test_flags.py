"""The flags every ``engs`` command takes, as a user types them: real subprocesses.

``--version``; ``--instance``/``--config`` and the log flags before or after the
command; ``engs config`` with each value's source; the log level the flags resolve to.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from engs import __version__
from engs.services.cli import build_parser, log_level
from tests.services.cli.support import engs


def test_version() -> None:
    res = engs("--version")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"engs {__version__}"


@pytest.mark.parametrize("before", [True, False])
def test_instance_and_config_before_or_after_the_command(
    instance: str, tmp_path: Path, before: bool
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[physics]\ntick_hz = 0\n", encoding="utf-8")
    flags = ["--instance", instance]
    res = engs(*flags, "status") if before else engs("status", *flags)
    assert res.returncode == 1
    assert f"no shared-memory region /engs-{instance}" in res.stderr
    flags = ["--config", str(cfg)]
    res = engs(*flags, "-q", "status") if before else engs("status", "-q", *flags)
    assert res.returncode == 2
    assert "at `$.physics.tick_hz`" in res.stderr


def test_send_takes_the_instance_before_the_command(instance: str) -> None:
    """The issue's `engs --instance X send` was refused by the parser; now it is
    parsed, and (no instance X here, no server on the address) fails to connect."""
    res = engs(
        "--instance", instance, "send", "reward", "0.5", "--addr", "127.0.0.1:9", "--timeout", "1"
    )
    assert res.returncode == 1
    assert "given by --addr" in res.stderr


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["status"], logging.WARNING),
        (["physics"], logging.INFO),
        (["-v", "physics"], logging.DEBUG),
        (["physics", "-q"], logging.WARNING),
        (["-q", "-q", "status"], logging.CRITICAL),
        (["up", "--log-level", "ERROR", "-v"], logging.ERROR),
        (["--log-level", "debug", "status", "-q"], logging.DEBUG),
    ],
)
def test_log_level(argv: list[str], level: int) -> None:
    assert log_level(build_parser().parse_args(argv)) == level


def test_bad_log_level_is_a_usage_error() -> None:
    res = engs("--log-level", "loud", "status")
    assert res.returncode == 2
    assert "invalid choice: 'loud'" in res.stderr


def test_config_shows_each_value_and_its_source(tmp_path: Path) -> None:
    cfg = tmp_path / "engs.toml"
    cfg.write_text('[physics]\nshape = [32, 32]\n[signals]\naddr = "127.0.0.1:7500"\n')
    env = {"ENGS_CONFIG": str(cfg), "ENGS_METRICS_ADDR": "127.0.0.1:9500"}
    res = engs("config", "--json", "--instance", "cfgtest", env=env)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["instance"] == {"value": "cfgtest", "source": "flag --instance"}
    assert got["physics.shape"] == {"value": [32, 32], "source": f"file {cfg}"}
    assert got["signals.addr"] == {"value": "127.0.0.1:7500", "source": f"file {cfg}"}
    assert got["metrics.addr"] == {"value": "127.0.0.1:9500", "source": "env ENGS_METRICS_ADDR"}
    assert got["physics.tick_hz"] == {"value": 1000.0, "source": "default"}

    table = engs("--instance", "cfgtest", "config", env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert 'instance = "cfgtest"  # flag --instance' in lines
    assert f"shape = [32, 32]  # file {cfg}" in lines
    assert 'addr = "127.0.0.1:9500"  # env ENGS_METRICS_ADDR' in lines
    assert "tick_hz = 1000.0  # default" in lines


def test_config_output_is_a_config_that_loads_back_to_the_same(tmp_path: Path) -> None:
    first = engs("config", "--json")
    out = tmp_path / "effective.toml"
    out.write_text(engs("config").stdout, encoding="utf-8")
    again = engs("config", "--json", "--config", str(out))
    assert again.returncode == 0, again.stderr
    a, b = json.loads(first.stdout), json.loads(again.stdout)
    assert {k: v["value"] for k, v in a.items()} == {k: v["value"] for k, v in b.items()}
    # every value the file holds is attributed to it; unset ones stay defaults
    assert {v["source"] for v in b.values()} == {f"file {out}", "default"}
