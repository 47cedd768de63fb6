"""engs.shared.gym: the Gymnasium wrapper in headless mode on a real env (a two-armed bandit
written here), its errors, its determinism, the example agent, and one live run against
a real ``engs up`` through the socket."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium
import msgspec
import numpy as np
import pytest

from engs.shared.client import SignalClient
from engs.shared.config import BoredomConfig, CouplingConfig
from engs.shared.gym import (
    EngsInfo,
    EngsWrapper,
    MappingError,
    exploration_signal,
    headless_engine,
)
from engs.shared.gym_agents import ALPHA0, EPSILON0, GatedAgent

N_EQ = CouplingConfig().n_eq
THETA = BoredomConfig().threshold


class TwoArmBandit(gymnasium.Env[int, int]):
    """Arm 0 pays N(0, 1), arm 1 pays N(1, 1); ``rewards`` overrides the payouts
    (one per step) to feed the wrapper chosen values, NaN included."""

    def __init__(self, rewards: list[float] | None = None) -> None:
        self.action_space = gymnasium.spaces.Discrete(2)
        self.observation_space = gymnasium.spaces.Discrete(1)
        self.rewards = rewards
        self.t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return 0, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        if self.rewards is not None:
            r = self.rewards[self.t]
        else:
            r = float(self.np_random.normal(float(action), 1.0))
        self.t += 1
        return 0, r, False, False, {"arm": action}


def _wrapped(rewards: list[float] | None = None, **kw: Any) -> EngsWrapper[int, int]:
    return EngsWrapper(TwoArmBandit(rewards), engine=headless_engine(), **kw)


def test_info_holds_the_neurochemistry_and_the_env_info() -> None:
    env = _wrapped(reward_scale=0.5)
    env.reset(seed=1)
    _, r, term, trunc, info = env.step(1)
    assert info["arm"] == 1  # the env's own info is kept
    assert set(info["engs"]) == set(EngsInfo.__struct_fields__)
    e = info["engs"]
    assert all(math.isfinite(v) for v in e.values())
    assert 0.0 < e["plasticity_gate"] < 2.0
    assert 0.0 < e["elasticity_gate"] < 1.0
    assert 1.0 <= e["speed_gain"] <= 2.0
    assert 0.0 <= e["exploration"] <= 1.0
    assert e["atp_ratio"] == pytest.approx(1.0, abs=0.01)
    assert (term, trunc) == (False, False)
    # the agent sees the env's reward, unscaled
    assert isinstance(r, float)


def test_the_info_is_the_engines_state() -> None:
    env = _wrapped()
    env.reset(seed=2)
    _, _, _, _, info = env.step(0)
    eng = env.engine
    assert eng is not None
    assert info["engs"] == msgspec.structs.asdict(env.engs_state())
    assert info["engs"]["dopamine"] == eng.dopamine
    assert info["engs"]["boredom"] == eng.boredom.level
    assert info["engs"]["plasticity_gate"] == eng.plasticity_gate


def test_rewards_raise_dopamine_and_the_reward_rate() -> None:
    env = _wrapped([1.0] * 50)
    env.reset(seed=0)
    for _ in range(50):
        _, _, _, _, info = env.step(1)
    e = info["engs"]
    assert e["reward_rate"] > 1.0  # rewards of 1 every 10 ms cycle
    assert e["dopamine"] > CouplingConfig().d_eq
    assert e["plasticity_gate"] > 1.0


def test_stress_mapping_raises_norepinephrine_and_exploration() -> None:
    calm, stressed = _wrapped([0.0] * 200), _wrapped([0.0] * 200, stress_fn=lambda o, r, i: 1.0)
    last = []
    for env in (calm, stressed):
        env.reset(seed=0)
        for _ in range(200):
            _, _, _, _, info = env.step(0)
        last.append(info["engs"])
    c, s = last
    assert c["exploration"] == 0.0  # at rest
    assert s["norepinephrine"] > N_EQ + 0.01
    assert s["exploration"] > 0.0
    assert s["relevance_gate"] < c["relevance_gate"]


def test_novelty_mapping_reaches_boredom() -> None:
    """Headless there is no physics, so the idle clock stands still and B is the
    opportunity cost: intake falling below R̄ raises it; novelty (somewhere new)
    restarts the local intake estimate and relieves it."""
    rewards = [1.0] * 300 + [0.05] * 300
    levels = []
    for fn in (None, lambda o, r, i: 1.0 if r < 0.5 else None):
        env = _wrapped(rewards, novelty_fn=fn)
        env.reset(seed=0)
        for _ in range(600):
            _, _, _, _, info = env.step(0)
        levels.append(info["engs"]["boredom"])
    assert levels[0] > THETA  # the patch went poor: bored
    assert levels[1] < levels[0] - 0.1


def test_rewards_are_scaled_and_clipped() -> None:
    env = _wrapped(reward_scale=0.5)
    assert env.scaled_reward(0.4) == 0.2
    assert env.scaled_reward(5.0) == 1.0
    assert env.scaled_reward(-3.0) == -1.0


def test_cycles_per_step() -> None:
    env = _wrapped([0.5, 0.5], cycles_per_step=3)
    env.reset(seed=0)
    env.step(0)
    env.step(0)
    assert env.engine is not None
    assert env.engine.cycle == 6


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"stress_fn": lambda o, r, i: 1.5},
            "`stress_fn` must return a finite float in [0, 1], got 1.5",
        ),
        (
            {"stress_fn": lambda o, r, i: float("nan")},
            "`stress_fn` must return a finite float in [0, 1], got nan",
        ),
        (
            {"novelty_fn": lambda o, r, i: -0.1},
            "`novelty_fn` must return a finite float in [0, 1], got -0.1",
        ),
        (
            {"novelty_fn": lambda o, r, i: "high"},
            "`novelty_fn` must return a float in [0, 1] or None, got str",
        ),
        (
            {"stress_fn": lambda o, r, i: True},
            "`stress_fn` must return a float in [0, 1] or None, got bool",
        ),
    ],
)
def test_bad_mappings_are_refused_before_engs_steps(kw: dict[str, Any], message: str) -> None:
    env = _wrapped([0.5], **kw)
    env.reset(seed=0)
    with pytest.raises(MappingError) as exc:
        env.step(0)
    assert str(exc.value) == message
    assert env.engine is not None
    assert env.engine.cycle == 0  # nothing reached the dynamics


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_reward_never_reaches_engs(bad: float) -> None:
    env = _wrapped([bad], reward_scale=0.1)
    env.reset(seed=0)
    with pytest.raises(MappingError) as exc:
        env.step(0)
    assert str(exc.value) == f"the environment's reward must be finite, got {bad!r}"
    assert env.engine is not None
    assert env.engine.cycle == 0


def test_a_mapping_returning_none_sends_nothing() -> None:
    env = _wrapped([0.0] * 20, stress_fn=lambda o, r, i: None)
    env.reset(seed=0)
    for _ in range(20):
        _, _, _, _, info = env.step(0)
    assert info["engs"]["norepinephrine"] == pytest.approx(N_EQ, abs=1e-3)


def test_constructor_errors() -> None:
    env = TwoArmBandit()
    with pytest.raises(ValueError, match="exactly one of `client` \\(live\\) or `engine`"):
        EngsWrapper(env)
    with pytest.raises(ValueError, match="exactly one of"):
        EngsWrapper(env, engine=headless_engine(), client=SignalClient("127.0.0.1:1"))
    for scale in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="`reward_scale` must be finite and > 0"):
            EngsWrapper(env, engine=headless_engine(), reward_scale=scale)
    with pytest.raises(ValueError, match="`cycles_per_step` must be >= 1, got 0"):
        EngsWrapper(env, engine=headless_engine(), cycles_per_step=0)


def _trajectory(env_seed: int, agent_seed: int, steps: int = 300) -> list[dict[str, float]]:
    agent = GatedAgent(2, np.random.default_rng(agent_seed))
    env = _wrapped(reward_scale=1 / 3, stress_fn=agent.surprise)
    env.reset(seed=env_seed)
    out = []
    for _ in range(steps):
        a = agent.act()
        _, r, _, _, info = env.step(a)
        agent.update(a, float(r), info["engs"])
        out.append(info["engs"])
    return out


def test_headless_runs_are_deterministic_by_seed() -> None:
    a, b = _trajectory(7, 8), _trajectory(7, 8)
    assert a == b  # bit-identical, not approximately equal
    assert _trajectory(9, 8) != a


def test_exploration_signal() -> None:
    assert exploration_signal(N_EQ, 0.0, N_EQ, THETA) == 0.0
    assert exploration_signal(N_EQ, THETA, N_EQ, THETA) == 0.0  # only past θ
    assert exploration_signal(1.0, 0.0, N_EQ, THETA) == 1.0
    assert exploration_signal(N_EQ, 1.0, N_EQ, THETA) == 1.0
    half_n = N_EQ + 0.5 * (1 - N_EQ)
    half_b = THETA + 0.5 * (1 - THETA)
    assert exploration_signal(half_n, half_b, N_EQ, THETA) == pytest.approx(0.75)
    assert exploration_signal(0.0, 0.0, N_EQ, THETA) == 0.0  # below rest adds nothing


def test_gated_agent_knobs_follow_the_gates() -> None:
    agent = GatedAgent(3, np.random.default_rng(0))
    assert agent.surprise(0, 1.0, {}) is None  # nothing predicted yet
    agent.update(0, 1.0, {"plasticity_gate": 1.0, "exploration": 0.0})
    assert (agent.alpha, agent.epsilon) == (ALPHA0, EPSILON0)  # at rest: S&B's defaults
    assert agent.q[0] == ALPHA0
    agent.update(0, 1.0, {"plasticity_gate": 2.0, "exploration": 1.0})
    assert agent.alpha == pytest.approx(4 * ALPHA0)
    assert agent.epsilon == pytest.approx(2 * EPSILON0)


def test_surprise_rises_with_a_change_in_the_world() -> None:
    """Yu & Dayan's unexpected uncertainty: steady noise gives little, a jump a lot."""
    agent = GatedAgent(1, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    steady = []
    for _ in range(300):
        agent.act()
        steady.append(agent.surprise(0, float(rng.normal(0.0, 0.1)), {}))
        agent.update(0, 0.0, {"plasticity_gate": 1.0, "exploration": 0.0})
    agent.act()
    jump = agent.surprise(0, 3.0, {})
    assert all(s is not None and 0.0 <= s <= 1.0 for s in steady)
    assert jump == 1.0
    assert float(np.mean(steady[100:])) < 0.5  # type: ignore[arg-type]


@pytest.mark.slow
def test_the_wrapper_drives_a_live_engs(instance: str, tmp_path: Path) -> None:
    from tests.services.supervisor.running import EngsUp

    with EngsUp(instance, tmp_path) as up:
        up.wait_alive()
        with SignalClient(f"127.0.0.1:{up.signal_port}") as c:
            env = EngsWrapper(TwoArmBandit([1.0] * 40), client=c, stress_fn=lambda o, r, i: 1.0)
            before = env.engs_state()
            env.reset(seed=0)
            for _ in range(40):
                _, r, _, _, info = env.step(1)
                assert r == 1.0
    e = info["engs"]
    assert set(e) == set(EngsInfo.__struct_fields__)
    assert before.reward_rate == 0.0
    assert e["reward_rate"] > 0.0  # each step's reward is in the state it reports
    assert e["norepinephrine"] > before.norepinephrine
    assert e["exploration"] > 0.0
    # the gates now travel in the state reply, consistent with the levels
    assert e["plasticity_gate"] == pytest.approx(1.0 + math.tanh(5.0 * (e["dopamine"] - 0.5)))
    assert e["speed_gain"] == pytest.approx(1.0 + e["norepinephrine"] ** 2)
    assert 0.0 < e["elasticity_gate"] < 1.0
