"""Example agents for :class:`engs.shared.gym.EngsWrapper`: a bandit learner whose knobs are
set by the ENGS gates, and the constant-step-size ε-greedy baseline it is measured
against (``engs bench bandit``).

The mapping from neuromodulators to an agent's knobs (one mapping for every task; the
constants are textbook defaults, not fitted to a benchmark):

* **DA → TD error** (Doya 2002). The agent's prediction error δ = r - Q(a) is its own;
  ENGS receives the reward and its phasic dopamine is a TD error of ENGS's critic.
* **Learning rate** — ACh in Doya 2002; ENGS has no acetylcholine, and the knob it
  publishes for learning rates is the plasticity gate η/η₀ (in (0, 2), 1 at rest). Yu &
  Dayan 2005 add that *unexpected* uncertainty (noradrenaline) should raise the
  learning rate: when the world has changed, old estimates deserve less weight. So
  α = α₀ · η/η₀ · (1 + x), x the exploration signal, which is N above rest
  (:func:`engs.shared.gym.exploration_signal`), capped at 1.
* **NA → inverse temperature / exploration** (Doya 2002; tonic mode, Aston-Jones & Cohen
  2005): ε = ε₀ · (1 + x). At rest (η/η₀ = 1, x = 0) the agent is S&B's ε-greedy with
  α₀ = 0.1 (§2.5) and ε₀ = 0.01 (§2.3).
* **5-HT → discount** (Doya 2002): a bandit has no future to discount, so the elasticity
  gate is not used here.
* **Unexpected uncertainty → NA** (Yu & Dayan 2005): the agent reports it to ENGS as
  stress (:meth:`GatedAgent.surprise`, the wrapper's ``stress_fn``): how much larger
  its recent squared prediction errors are than their long-run level (expected
  uncertainty), 0 when they are not larger. ENGS's N integrates the stress and decays
  to rest (``norepinephrine.stress_tau_s``), so a run of surprises raises exploration
  and learning rate for a while, a single outlier hardly at all. Lee, Liebana, Clopath
  & Dabney (2024) build a neuromodulated agent on a non-stationary bandit in the same
  spirit: neuromodulators as meta-parameters that adapt learning and exploration online.

Both agents draw from the ``numpy.random.Generator`` they are given: a seed fixes a run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: S&B (2018) §2.5's constant step size for nonstationary problems.
ALPHA0 = 0.1
#: S&B (2018) §2.3's long-run ε: of figure 2.2's 0.1 and 0.01, 0.01 "eventually performs
#: better". It is the agent's ε at rest; ENGS raises it (up to 2ε₀ here) when N or B do.
EPSILON0 = 0.01
#: Time constants of the prediction-error averages, in steps: fast (recent) and slow
#: (the expected level). A ratio of 10 separates "a run of surprises" from the noise.
SURPRISE_FAST_STEPS = 10.0
SURPRISE_SLOW_STEPS = 100.0


class GatedAgent:
    """Constant-step action values; the step size and ε set from ``info["engs"]``.

    Use: ``a = agent.act()``; ``obs, r, ..., info = env.step(a)`` on an EngsWrapper made
    with ``stress_fn=agent.surprise``; ``agent.update(a, r, info["engs"])``.
    """

    def __init__(
        self,
        n_actions: int,
        rng: np.random.Generator,
        *,
        alpha0: float = ALPHA0,
        epsilon0: float = EPSILON0,
    ) -> None:
        if n_actions < 1:
            raise ValueError(f"`n_actions` must be >= 1, got {n_actions}")
        self.q = np.zeros(n_actions)
        self.rng = rng
        self.alpha0 = alpha0
        self.epsilon0 = epsilon0
        self.alpha = alpha0
        self.epsilon = epsilon0
        self._last: int | None = None
        self._fast = 0.0
        self._slow = 0.0
        self._steps = 0

    def act(self) -> int:
        """ε-greedy on Q with the current ε; ties broken at random."""
        n = self.q.shape[0]
        if self.rng.random() < self.epsilon:
            a = int(self.rng.integers(n))
        else:
            best = np.flatnonzero(self.q == self.q.max())
            a = int(best[0] if best.shape[0] == 1 else self.rng.choice(best))
        self._last = a
        return a

    def surprise(self, obs: Any, reward: float, info: dict[str, Any]) -> float | None:
        """Unexpected uncertainty in [0, 1], for the wrapper's ``stress_fn``: with δ the
        prediction error of the last action, F and L the fast and slow means of δ²,
        clamp(F / L - 1, 0, 1). None before the first action (nothing predicted)."""
        if self._last is None:
            return None
        d2 = (reward - float(self.q[self._last])) ** 2
        self._steps += 1
        # bias-corrected start: the first steps average over what has been seen
        kf = max(1.0 / SURPRISE_FAST_STEPS, 1.0 / self._steps)
        ks = max(1.0 / SURPRISE_SLOW_STEPS, 1.0 / self._steps)
        self._fast += kf * (d2 - self._fast)
        self._slow += ks * (d2 - self._slow)
        if self._slow <= 0.0:
            return 0.0
        return min(1.0, max(0.0, self._fast / self._slow - 1.0))

    def update(self, action: int, reward: float, engs: dict[str, Any]) -> None:
        """Q(a) ← Q(a) + α (r - Q(a)), then set α and ε for the next step from the gates."""
        self.q[action] += self.alpha * (reward - self.q[action])
        x = float(engs["exploration"])
        self.alpha = min(1.0, self.alpha0 * float(engs["plasticity_gate"]) * (1.0 + x))
        self.epsilon = min(1.0, self.epsilon0 * (1.0 + x))


class EpsilonGreedy:
    """Sutton & Barto's ε-greedy agent with a constant step size α (§2.5)."""

    def __init__(
        self, n_actions: int, rng: np.random.Generator, *, alpha: float, epsilon: float
    ) -> None:
        self.q = np.zeros(n_actions)
        self.rng = rng
        self.alpha = alpha
        self.epsilon = epsilon

    def act(self) -> int:
        n = self.q.shape[0]
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(n))
        best = np.flatnonzero(self.q == self.q.max())
        return int(best[0] if best.shape[0] == 1 else self.rng.choice(best))

    def update(self, action: int, reward: float) -> None:
        self.q[action] += self.alpha * (reward - self.q[action])
