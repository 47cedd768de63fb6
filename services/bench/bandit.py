"""``engs bench bandit``: the ENGS-gated agent on Sutton & Barto's nonstationary testbed.

The testbed (Sutton & Barto 2018, §2.5, exercise 2.5): 10 arms whose true values q*(a)
start equal (0) and take independent random walks, q* += N(0, 0.01²) on every step; a
pull of arm a pays N(q*(a), 1); 10,000 steps per run. Each run's walk and reward noise
come from its own seed (:func:`bandit_values`), drawn independently of the actions, so every
agent meets the same bandits (paired runs).

Agents:

* the gated agent (:class:`engs.shared.gym_agents.GatedAgent`) through
  :class:`engs.shared.gym.EngsWrapper` in headless mode, one ENGS control cycle per pull,
  rewards scaled by 1/3 (three noise standard deviations fill [-1, 1]); its constants
  are textbook defaults, the same for any task;
* constant-step-size ε-greedy (§2.5) over an α × ε grid of powers of two, simulated all
  at once with NumPy (the same algorithm as :class:`engs.shared.gym_agents.EpsilonGreedy`).

Score: the average reward over the last 5,000 steps (exercise 2.11's measure), mean
over runs, with its standard error; the gated agent against the best grid cell, which
is chosen on these same runs (an optimistic baseline). The gated runs use a process
pool (one process per CPU). Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from engs.shared.config import Config
from engs.shared.errors import NotAvailable

try:
    import gymnasium
except ImportError as exc:  # the optional `gym` extra
    raise NotAvailable(
        f"engs bench bandit needs gymnasium ({exc}): pip install 'engs[gym]'"
    ) from exc

K = 10
WALK_SIGMA = 0.01
STEPS = 10_000
REWARD_SCALE = 1.0 / 3.0
ALPHAS = tuple(2.0**-i for i in range(7, 0, -1))  # 1/128 .. 1/2
EPSILONS = tuple(2.0**-i for i in range(8, 1, -1))  # 1/256 .. 1/4
#: Run r uses seed FIRST_SEED + r. Seeds 0-39 were used while the gated agent's mapping
#: was being chosen; the benchmark's runs are kept apart from them.
FIRST_SEED = 1000


def bandit_values(
    seed: int, steps: int, k: int = K
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """``seed``'s bandit: the true values q*_t, shape (steps, k), 0 at t = 0 and a
    random walk after, and the reward noise, shape (steps,): the pull of arm a at step
    t pays q*_t(a) + noise_t. Independent of the actions taken."""
    rng = np.random.default_rng([seed, 0xBA4D17])
    inc = rng.normal(0.0, WALK_SIGMA, (steps, k))
    inc[0] = 0.0  # true values start equal
    q = np.cumsum(inc, axis=0)
    noise = rng.normal(0.0, 1.0, steps)
    return q, noise


class NonstationaryBandit(gymnasium.Env[Any, Any]):
    """S&B §2.5's testbed as a Gymnasium env: one dummy observation, ``k`` actions;
    ``info["optimal"]`` says whether the pull was of a best arm. Truncates after
    ``steps`` pulls; ``reset(seed=)`` picks the run's bandit (:func:`bandit_values`)."""

    def __init__(self, steps: int = STEPS, k: int = K) -> None:
        self.steps = steps
        self.k = k
        self.action_space = gymnasium.spaces.Discrete(k)
        self.observation_space = gymnasium.spaces.Discrete(1)
        self._q, self._noise = bandit_values(0, steps, k)
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._q, self._noise = bandit_values(seed, self.steps, self.k)
        self._t = 0
        return 0, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        if not 0 <= action < self.k:
            raise ValueError(f"action must be in 0..{self.k - 1}, got {action}")
        t = self._t
        q = self._q[t]
        reward = float(q[action] + self._noise[t])
        self._t += 1
        optimal = bool(q[action] >= q.max())
        return 0, reward, False, self._t >= self.steps, {"optimal": optimal}


def run_gated(seed: int, steps: int = STEPS, config: Config | None = None) -> np.ndarray[Any, Any]:
    """One run of the gated agent on ``seed``'s bandit; its rewards, shape (steps,).
    ``config``: the ENGS configuration (default: the built-in defaults)."""
    from engs.shared.gym import EngsWrapper, headless_engine  # noqa: PLC0415
    from engs.shared.gym_agents import GatedAgent  # noqa: PLC0415

    agent = GatedAgent(K, np.random.default_rng([seed, 1]))
    env = EngsWrapper(
        NonstationaryBandit(steps),
        engine=headless_engine(config),
        reward_scale=REWARD_SCALE,
        stress_fn=agent.surprise,
    )
    env.reset(seed=seed)
    out = np.empty(steps)
    for t in range(steps):
        a = agent.act()
        _, r, _, _, info = env.step(a)
        agent.update(a, float(r), info["engs"])
        out[t] = r
    return out


def sweep_epsilon_greedy(
    seeds: list[int],
    steps: int = STEPS,
    alphas: tuple[float, ...] = ALPHAS,
    epsilons: tuple[float, ...] = EPSILONS,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Constant-α ε-greedy on each seed's bandit for every (α, ε), all cells at once.
    Returns the mean reward over the last half of the steps per run, shape
    (len(alphas), len(epsilons), len(seeds)), and the reward per step averaged over
    the runs, shape (len(alphas), len(epsilons), steps)."""
    half = steps // 2
    al = np.asarray(alphas)[:, None]
    ep = np.asarray(epsilons)[None, :]
    g = (len(alphas), len(epsilons))
    out = np.empty((*g, len(seeds)))
    curve = np.zeros((*g, steps))
    rows = np.arange(g[0])[:, None]
    cols = np.arange(g[1])[None, :]
    for i, seed in enumerate(seeds):
        q, noise = bandit_values(seed, steps)
        rng = np.random.default_rng([seed, 2])
        est = np.zeros((*g, K))
        total = np.zeros(g)
        for t in range(steps):
            # ties broken at random: a jitter far below any estimate's resolution
            greedy = np.argmax(est + 1e-12 * rng.random((*g, K)), axis=2)
            explore = rng.random(g) < ep
            a = np.where(explore, rng.integers(K, size=g), greedy)
            r = q[t, a] + noise[t]
            sel = est[rows, cols, a]
            est[rows, cols, a] = sel + al * (r - sel)
            curve[..., t] += r
            if t >= steps - half:
                total += r
        out[..., i] = total / half
    return out, curve / len(seeds)


class Result(msgspec.Struct, frozen=True, kw_only=True):
    runs: int
    steps: int
    gated_mean: float
    gated_sem: float
    best_alpha: float
    best_epsilon: float
    best_mean: float
    best_sem: float
    ratio: float
    """gated / best fixed."""
    rest_mean: float
    """Ablation: the gated agent with its gates held at rest (η/η₀ = 1, x = 0), i.e.
    ε-greedy with α₀ and ε₀."""
    rest_sem: float
    paired_diff_mean: float
    paired_diff_sem: float
    grid: list[list[float]]
    """Mean score per (α, ε) cell, rows α (ALPHAS), columns ε (EPSILONS)."""
    gated_curve: list[float]
    """The gated agent's reward per step, mean over runs, in bins of steps/100."""
    best_curve: list[float]
    rest_curve: list[float]
    gated_s: float
    sweep_s: float
    machine: str


def _sem(x: np.ndarray[Any, Any]) -> float:
    return float(x.std(ddof=1) / np.sqrt(x.shape[0])) if x.shape[0] > 1 else 0.0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _bins(x: np.ndarray[Any, Any], n: int = 100) -> list[float]:
    m = max(1, x.shape[0] // n)
    return [float(v) for v in x[: m * (x.shape[0] // m)].reshape(-1, m).mean(axis=1)]


def run(
    runs: int, steps: int = STEPS, workers: int | None = None, config: Config | None = None
) -> Result:
    """Measure; ``runs`` paired runs (seeds FIRST_SEED .. FIRST_SEED + runs - 1), the
    gated agent on ``config`` (default: the built-in defaults)."""
    seeds = list(range(FIRST_SEED, FIRST_SEED + runs))
    half = steps // 2
    t0 = time.perf_counter()
    workers = workers or os.cpu_count() or 1
    if workers > 1 and runs > 1:
        with ProcessPoolExecutor(workers) as pool:
            gated = np.stack(list(pool.map(run_gated, seeds, [steps] * runs, [config] * runs)))
    else:
        gated = np.stack([run_gated(s, steps, config) for s in seeds])
    t1 = time.perf_counter()
    grid, curves = sweep_epsilon_greedy(seeds, steps)
    t2 = time.perf_counter()
    from engs.shared.gym_agents import ALPHA0, EPSILON0  # noqa: PLC0415

    rest_grid, rest_curves = sweep_epsilon_greedy(seeds, steps, (ALPHA0,), (EPSILON0,))
    rest = rest_grid[0, 0]
    means = grid.mean(axis=2)
    i, j = np.unravel_index(int(np.argmax(means)), means.shape)
    best = grid[i, j]
    score = gated[:, steps - half :].mean(axis=1)
    diff = score - best
    return Result(
        runs=runs,
        steps=steps,
        gated_mean=float(score.mean()),
        gated_sem=_sem(score),
        best_alpha=ALPHAS[i],
        best_epsilon=EPSILONS[j],
        best_mean=float(best.mean()),
        best_sem=_sem(best),
        ratio=float(score.mean() / best.mean()),
        rest_mean=float(rest.mean()),
        rest_sem=_sem(rest),
        paired_diff_mean=float(diff.mean()),
        paired_diff_sem=_sem(diff),
        grid=[[float(v) for v in row] for row in means],
        gated_curve=_bins(gated.mean(axis=0)),
        best_curve=_bins(curves[i, j]),
        rest_curve=_bins(rest_curves[0, 0]),
        gated_s=t1 - t0,
        sweep_s=t2 - t1,
        machine=f"{_cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"NumPy {np.__version__}",
    )


def _frac(x: float) -> str:
    return f"1/{round(1 / x)}"


def format_markdown(res: Result) -> str:
    """The result as a markdown table (and the grid)."""
    lines = [
        f"Nonstationary 10-armed testbed, {res.steps} steps, {res.runs} paired runs "
        f"(seeds {FIRST_SEED}..{FIRST_SEED + res.runs - 1}); "
        f"average reward over the last {res.steps // 2} steps (mean ± s.e.m. over runs).",
        "",
        "| agent | score | ratio to best fixed |",
        "|---|---|---|",
        f"| ENGS-gated (α₀ = 0.1, ε₀ = 0.01, not tuned) | {res.gated_mean:.4f} ± "
        f"{res.gated_sem:.4f} | {res.ratio:.3f} |",
        f"| best fixed ε-greedy (α = {_frac(res.best_alpha)}, ε = "
        f"{_frac(res.best_epsilon)}) | {res.best_mean:.4f} ± {res.best_sem:.4f} | 1 |",
        f"| ablation: gates held at rest (ε-greedy α = 0.1, ε = 0.01) | "
        f"{res.rest_mean:.4f} ± {res.rest_sem:.4f} | {res.rest_mean / res.best_mean:.3f} |",
        "",
        f"Paired difference gated - best: {res.paired_diff_mean:+.4f} ± {res.paired_diff_sem:.4f}.",
        "",
        "ε-greedy grid (rows α, columns ε):",
        "",
        "| α \\ ε | " + " | ".join(_frac(e) for e in EPSILONS) + " |",
        "|---|" + "---|" * len(EPSILONS),
    ]
    for a, row in zip(ALPHAS, res.grid, strict=True):
        lines.append(f"| {_frac(a)} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    lines += [
        "",
        f"Gated runs {res.gated_s:.1f} s, sweep {res.sweep_s:.1f} s on {res.machine}.",
    ]
    return "\n".join(lines)


def plot(res: Result, path: Path) -> bool:
    """Reward per step (binned) of both agents as a PNG; False if matplotlib is missing."""
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return False
    x = np.arange(len(res.gated_curve)) * (res.steps / len(res.gated_curve))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, res.gated_curve, label="ENGS-gated (not tuned)", color="#d62728")
    ax.plot(
        x,
        res.best_curve,
        label=f"best ε-greedy (α={_frac(res.best_alpha)}, ε={_frac(res.best_epsilon)})",
        color="#222222",
    )
    ax.plot(x, res.rest_curve, label="gates held at rest (α=0.1, ε=0.01)", color="#999999")
    ax.axvline(res.steps // 2, color="#999999", lw=0.8, ls="--")
    ax.set_xlabel("step")
    ax.set_ylabel("average reward")
    ax.set_title(f"Nonstationary 10-armed testbed ({res.runs} runs)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The flags of ``engs bench bandit``."""
    ap.add_argument("--runs", type=int, default=200, help="paired runs (default 200)")
    ap.add_argument("--steps", type=int, default=10_000, help="steps per run (default 10000)")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")
    ap.add_argument("--plot", default=None, metavar="PNG", help="write a PNG plot here")
    ap.add_argument("--json", action="store_true", help="print JSON instead of markdown")


def run_args(cfg: Config, args: argparse.Namespace) -> int:
    """Run the testbed with the gated agent on ``cfg`` and print the result; 2 on bad
    arguments."""
    if args.runs < 1 or args.steps < 2:
        print("engs bench bandit: --runs must be >= 1 and --steps >= 2", file=sys.stderr)
        return 2
    res = run(args.runs, args.steps, args.workers, cfg)
    print(msgspec.json.encode(res).decode() if args.json else format_markdown(res))
    if args.plot is not None and not plot(res, Path(args.plot)):
        print("engs bench bandit: matplotlib is not installed: no plot", file=sys.stderr)
    return 0
