"""The pure rules with crafted numbers: edges the shared-memory tests do not reach."""

from __future__ import annotations

import logging
import math

import pytest

from engs.services.oracle.ratelog import RateLimitedLog
from engs.services.oracle.rules import AnhedoniaRule, BandRule, ManiaRule, ScramRule, StalenessRule

MS = 1_000_000
S = 1_000_000_000


def test_band_rule_refuses_an_inverted_band() -> None:
    with pytest.raises(ValueError, match="wrong side"):
        BandRule(0.95, 0.97, above=True)
    with pytest.raises(ValueError, match="wrong side"):
        BandRule(0.05, 0.01, above=False)


def test_band_rule_holds_on_non_finite_input() -> None:
    r = BandRule(0.95, 0.9, above=True)
    assert r.update(0.99) and r.update(math.nan) and r.update(math.inf)
    assert not r.update(0.5) and not r.update(math.nan)


def test_staleness_channels_have_their_own_limits() -> None:
    r = StalenessRule(
        {"dopamine": 10 * MS, "serotonin": 50 * MS, "norepinephrine": 10 * MS},
        sync_limit_ns=10 * MS,
        pause_limit_ns=50 * MS,
        clear_states=3,
    )
    assert r.on_applied(10 * MS) == ()  # at the limit is not over it
    assert r.on_applied(10 * MS + 1) == ("dopamine", "norepinephrine")
    assert not r.active
    assert r.on_applied(50 * MS + 1) == ("dopamine", "serotonin", "norepinephrine")
    assert r.active
    for _ in range(2):
        r.on_published(1 * MS)
    assert r.active
    r.on_published(1 * MS)
    assert not r.active


def test_scram_growth_restarts_with_a_restarted_physics() -> None:
    r = ScramRule(
        energy_per_node_max=1e6,
        growth_factor=10,
        growth_window_ns=S,
        growth_floor_per_node=1.0,
        clear_ns=S,
        clear_ratio=0.5,
    )
    assert not r.on_energy(10 * S, 100.0, 10)
    # Tick times going back mean a new physics: its history is not compared with the old.
    assert not r.on_energy(5 * S, 5000.0, 10)
    assert not r.active
    assert r.on_energy(5 * S + 100 * MS, 60_000.0, 10)  # x12 within the window
    assert r.reason.startswith("energy grew x12 in 0.1 s")


def test_anhedonia_restarts_with_a_restarted_orchestrator() -> None:
    r = AnhedoniaRule(below=0.1, cycles=10, ma_cycles=3, rearm_above=0.15)
    assert not any(r.on_state(s, 0.0) for s in range(1, 11))  # 10 cycles: not "> 10"
    assert r.in_episode
    assert not r.on_state(3, 0.0)  # seq went back: a new orchestrator, a new count
    assert not any(r.on_state(s, 0.0) for s in range(4, 13))
    assert r.on_state(13, 0.0)


def test_mania_needs_a_full_window_and_survives_a_counter_reset() -> None:
    r = ManiaRule(rate_per_s=1.0, window_ns=S, clear_ratio=0.5, cooldown_ns=10 * S)
    assert not r.on_sample(0, 0)
    assert not r.on_sample(500 * MS, 100)  # fast, but not a full window yet
    assert r.on_sample(S, 200)
    assert not r.on_sample(2 * S, 0)  # the counter went back: start over, no judgement
    assert not r.on_sample(2 * S + 500 * MS, 50)  # not a full window since the reset
    assert not r.on_sample(3 * S, 100)  # 100/s, but within the 10 s cooldown
    assert r.rate_per_s_now == pytest.approx(100.0)
    assert r.on_sample(11 * S, 500)  # still manic, cooldown over: the next request


def test_rate_limited_log_counts_what_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    log = RateLimitedLog(logging.getLogger("engs.test"), interval_ns=S)
    with caplog.at_level(logging.WARNING, logger="engs.test"):
        assert log.log("k", 0, logging.WARNING, "late by %d ms", 12)
        assert not log.log("k", S // 2, logging.WARNING, "late by %d ms", 13)
        assert log.log("other", S // 2, logging.WARNING, "other")
        assert log.log("k", S, logging.WARNING, "late by %d ms", 14)
    assert [r.getMessage() for r in caplog.records] == [
        "late by 12 ms",
        "other",
        "late by 14 ms (1 more since the last report)",
    ]
