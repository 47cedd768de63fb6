"""``engs bench bandit`` at tiny sizes: the testbed's invariants, the result's
consistency and the CLI wiring (no timing asserts: timings belong in the bench)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engs.services.bench.bandit import (
    ALPHAS,
    EPSILONS,
    WALK_SIGMA,
    NonstationaryBandit,
    bandit_values,
    format_markdown,
    run,
    sweep_epsilon_greedy,
)
from engs.services.cli import main


def test_the_testbed_starts_equal_and_walks_with_sigma() -> None:
    q, noise = bandit_values(seed=3, steps=20_000)
    assert q.shape == (20_000, 10)
    assert np.all(q[0] == 0.0)  # true values start equal
    steps = np.diff(q, axis=0)
    assert float(steps.std()) == pytest.approx(WALK_SIGMA, rel=0.02)
    assert float(noise.std()) == pytest.approx(1.0, rel=0.02)
    assert not np.array_equal(bandit_values(4, 100)[0], bandit_values(3, 100)[0])


def test_the_env_pays_the_testbed() -> None:
    env = NonstationaryBandit(steps=5)
    env.reset(seed=3)
    q, noise = bandit_values(3, 5)
    for t in range(5):
        _, r, term, trunc, info = env.step(t % 10)
        assert r == q[t, t % 10] + noise[t]
        assert info["optimal"] == (q[t, t % 10] >= q[t].max())
        assert not term
    assert trunc  # after `steps` pulls


def test_sweep_shape() -> None:
    grid, curve = sweep_epsilon_greedy([1, 2], steps=400, alphas=(0.1,), epsilons=(0.01, 1.0))
    assert grid.shape == (1, 2, 2)
    assert curve.shape == (1, 2, 400)
    # the score is the mean of the last half of the curve, over the runs
    np.testing.assert_allclose(grid.mean(axis=2), curve[..., 200:].mean(axis=2))


def test_bench_result_is_consistent(tmp_path: Path) -> None:
    res = run(runs=2, steps=200, workers=1)
    means = np.asarray(res.grid)
    assert means.shape == (len(ALPHAS), len(EPSILONS))
    assert res.best_mean == pytest.approx(means.max())
    assert res.ratio == pytest.approx(res.gated_mean / res.best_mean)
    assert res.paired_diff_mean == pytest.approx(res.gated_mean - res.best_mean)
    assert len(res.gated_curve) == 100
    text = format_markdown(res)
    assert "| ENGS-gated" in text
    assert f"{res.gated_mean:.4f}" in text


def test_cli_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "bandit.png"
    argv = ["bench", "bandit", "--runs", "1", "--steps", "100", "--workers", "1"]
    assert main([*argv, "--plot", str(png)]) == 0
    assert "best fixed ε-greedy" in capsys.readouterr().out
    pytest.importorskip("matplotlib")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["bench", "bandit", "--runs", "0"]) == 2
