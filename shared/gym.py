"""Agents through Gymnasium: a wrapper that feeds an environment's rewards to ENGS.

:class:`EngsWrapper` wraps any ``gymnasium.Env``. After each ``env.step`` it forwards

* the step's reward, multiplied by ``reward_scale`` and clipped to [-1, 1] (the
  ``reward`` message's bounds, :mod:`engs.shared.messages`);
* optionally a stress level, ``stress_fn(obs, reward, info) -> float in [0, 1] | None``;
* optionally a novelty entropy, ``novelty_fn(obs, reward, info) -> float in [0, 1] | None``

to ENGS, and puts the neurochemistry that results into ``info["engs"]``
(:class:`EngsInfo` as a dict): D, S, N, R̄, ATP, boredom, the gates the ENGS publishes
(plasticity, elasticity, relevance, speed) and an exploration signal defined here
(:func:`exploration_signal`).

Two modes, exactly one of them per wrapper:

* **live** (``client=SignalClient(...)``): the values go over the signal socket to a
  running ``engs up``; after sending, the wrapper reads ``state`` until the published
  record includes the step's last signal (``signal_id`` ≥ the ack's ``seq``), so
  ``info["engs"]`` is the state *after* this step's reward, at the service's pace
  (one control cycle, 10 ms at 100 Hz, per step at most).
* **headless** (``engine=Engs(...)``, :func:`headless_engine`): the wrapper drives the
  ENGS dynamics library directly, ``cycles_per_step`` control cycles per env step (the
  first carries the step's inputs, the rest are idle), with no clock, socket or
  process: as fast as the step function, and deterministic (the same config, seeds
  and actions give bit-identical ``info["engs"]``).

``reset()`` resets the environment only: ENGS, like a physiology, carries over from one
episode to the next (headless, a fresh one is a new engine). ``cycles_per_step`` applies
to headless mode; live, the service's own clock runs the cycles.

Invariants: nothing non-finite or out of bounds reaches ENGS. A non-finite reward, or a
mapping that returns something other than a finite number in [0, 1] or None, raises
:class:`MappingError` naming the mapping, the bound and the value, before anything is
sent. One wrapper, one thread (the client and the engine are not shared).

Headless mode imports the orchestrator's library (``engs.services.orchestrator``) when it is
used: it runs the dynamics in the caller's process, which is its purpose.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, SupportsFloat, TypeVar

import gymnasium
import msgspec

from engs.shared.client import SignalClient
from engs.shared.config import BoredomConfig, Config, CouplingConfig
from engs.shared.errors import EngsError
from engs.shared.messages import StateSnapshot

if TYPE_CHECKING:
    from engs.services.orchestrator.engs import Engs

ObsT = TypeVar("ObsT")
ActT = TypeVar("ActT")

#: ``fn(obs, reward, info)`` -> a level in [0, 1], or None for "nothing this step".
#: ``reward`` is the environment's, before scaling.
Mapping = Callable[[Any, float, dict[str, Any]], SupportsFloat | None]

#: How long a live step waits for the service to publish its signals.
LIVE_SYNC_TIMEOUT_S = 2.0


class MappingError(EngsError, ValueError):
    """A reward, or a stress/novelty mapping's value, that ENGS must not receive."""


class EngsInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What ``info["engs"]`` holds after a step (as a dict: ``msgspec.structs.asdict``).

    Levels are dimensionless in [0, 1] unless stated."""

    dopamine: float
    """D."""
    serotonin: float
    """S."""
    norepinephrine: float
    """N."""
    reward_rate: float
    """R̄, the average reward rate in (scaled) reward per ENGS second: tonic dopamine."""
    phasic_dopamine: float
    """The phasic response, δ with negative errors compressed."""
    td_error: float
    """δ that drove D."""
    atp_ratio: float
    """Available ATP / capacity."""
    boredom: float
    """B, the boredom level."""
    plasticity_gate: float
    """η/η₀ in (0, 2): the learning-rate multiplier, 1 at D = D_eq."""
    elasticity_gate: float
    """λ/λ₀ in (0, 1): the pull back to the prior, 0.5 at S = S_eq."""
    relevance_gate: float
    """τ(N): the admission threshold; falls as N rises."""
    speed_gain: float
    """v/v₀ = 1 + N² in [1, 2]."""
    exploration: float
    """In [0, 1]: :func:`exploration_signal` of N and B."""


#: The fields of :class:`EngsInfo` that the engine and a state snapshot carry under the
#: same name (boredom is ``Engs.boredom.level``; exploration is derived here).
_COPIED = tuple(f for f in EngsInfo.__struct_fields__ if f not in ("boredom", "exploration"))


def exploration_signal(n: float, boredom: float, n_eq: float, threshold: float) -> float:
    """The exploration drive in [0, 1]: 1 - (1 - a)(1 - b), either source suffices.

    * a = clamp((N - N_eq) / (1 - N_eq), 0, 1): tonic noradrenaline above its resting
      level. Tonic locus-coeruleus activity favours disengagement and exploration
      (Aston-Jones & Cohen 2005, adaptive gain theory), and noradrenaline reports
      *unexpected* uncertainty, the kind that says the world has changed and old
      estimates should be doubted (Yu & Dayan 2005). In Doya's (2002) scheme
      noradrenaline sets the inverse temperature β of action selection; a tonic rise
      here lowers β (the sign of the tonic mode, not the phasic one).
    * b = clamp((B - θ) / (1 - θ), 0, 1): boredom past the curiosity threshold θ
      (``boredom.threshold``, where ENGS raises CURIOSITY). Boredom drives information
      seeking and exploration (Geana, Wilson, Daw & Cohen 2016); below θ it adds none.

    At rest (N = N_eq, B < θ) the signal is 0: an agent then explores at its base rate.
    """
    a = min(1.0, max(0.0, (n - n_eq) / (1.0 - n_eq)))
    b = min(1.0, max(0.0, (boredom - threshold) / (1.0 - threshold)))
    return 1.0 - (1.0 - a) * (1.0 - b)


def headless_engine(config: Config | None = None, *, areas: bool = False) -> Engs:
    """An ``Engs`` for headless mode: the reference host calibration (no start-up
    benchmark, so runs are reproducible) and, unless ``areas``, no area model (it never
    feeds back into D, S, N, ATP or boredom and costs ~0.7 ms per cycle against
    ~0.03 ms for the global dynamics). ``config``: default: the built-in defaults."""
    from engs.services.orchestrator.engs import Engs  # noqa: PLC0415 - headless mode only
    from engs.services.orchestrator.metabolism import Calibration  # noqa: PLC0415
    from engs.shared.config import load_config  # noqa: PLC0415

    if config is None:
        config = load_config(env={})
    if not areas and config.orchestrator.areas.enabled:
        oc = config.orchestrator
        config = msgspec.structs.replace(
            config,
            orchestrator=msgspec.structs.replace(
                oc, areas=msgspec.structs.replace(oc.areas, enabled=False)
            ),
        )
    ref = Calibration.reference(config.orchestrator.metabolism.reference_score)
    return Engs(config, calibration=ref)


def _level(name: str, value: object) -> float | None:
    """A mapping's value as a float in [0, 1], or None; MappingError otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, SupportsFloat):
        raise MappingError(
            f"`{name}` must return a float in [0, 1] or None, got {type(value).__name__}"
        )
    v = float(value)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise MappingError(f"`{name}` must return a finite float in [0, 1], got {v!r}")
    return v


class EngsWrapper(gymnasium.Wrapper[ObsT, ActT, ObsT, ActT]):
    """Forwards each step's reward (and optional stress/novelty) to ENGS; see the module
    docstring. Rewards reach the agent unchanged."""

    def __init__(
        self,
        env: gymnasium.Env[ObsT, ActT],
        *,
        client: SignalClient | None = None,
        engine: Engs | None = None,
        reward_scale: float = 1.0,
        stress_fn: Mapping | None = None,
        novelty_fn: Mapping | None = None,
        cycles_per_step: int = 1,
        config: Config | None = None,
    ) -> None:
        """``config``: live mode, the service's configuration, for the resting N and the
        curiosity threshold of :func:`exploration_signal` (default: the built-in
        defaults); headless mode uses the engine's."""
        super().__init__(env)
        if (client is None) == (engine is None):
            raise ValueError("EngsWrapper needs exactly one of `client` (live) or `engine`")
        scale = float(reward_scale)
        if not (math.isfinite(scale) and scale > 0.0):
            raise ValueError(f"`reward_scale` must be finite and > 0, got {reward_scale!r}")
        if isinstance(cycles_per_step, bool) or int(cycles_per_step) != cycles_per_step:
            raise ValueError(f"`cycles_per_step` must be an int, got {cycles_per_step!r}")
        if cycles_per_step < 1:
            raise ValueError(f"`cycles_per_step` must be >= 1, got {cycles_per_step}")
        self.client = client
        self.engine = engine
        self.reward_scale = scale
        self.stress_fn = stress_fn
        self.novelty_fn = novelty_fn
        self.cycles_per_step = int(cycles_per_step)
        cfg = engine.config if engine is not None else config
        coupling = cfg.orchestrator.coupling if cfg is not None else CouplingConfig()
        boredom = cfg.orchestrator.boredom if cfg is not None else BoredomConfig()
        self._n_eq = coupling.n_eq
        self._threshold = boredom.threshold
        if engine is not None:
            from engs.services.orchestrator.inputs import CycleInputs  # noqa: PLC0415

            self._inputs = CycleInputs
            self._idle = CycleInputs()

    def scaled_reward(self, reward: SupportsFloat) -> float:
        """``reward`` x ``reward_scale`` clipped to [-1, 1]; MappingError if not finite."""
        r = float(reward)
        if not math.isfinite(r):
            raise MappingError(f"the environment's reward must be finite, got {r!r}")
        return min(1.0, max(-1.0, r * self.reward_scale))

    def step(self, action: ActT) -> tuple[ObsT, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        r = self.scaled_reward(reward)
        raw = float(reward)
        stress = (
            None if self.stress_fn is None else _level("stress_fn", self.stress_fn(obs, raw, info))
        )
        novelty = (
            None
            if self.novelty_fn is None
            else _level("novelty_fn", self.novelty_fn(obs, raw, info))
        )
        state = (
            self._step_headless(self.engine, r, stress, novelty)
            if self.engine is not None
            else self._step_live(r, stress, novelty)
        )
        info = dict(info)
        info["engs"] = msgspec.structs.asdict(state)
        return obs, reward, terminated, truncated, info

    def engs_state(self) -> EngsInfo:
        """The ENGS state now (live: one ``state`` request; headless: the engine's)."""
        if self.engine is not None:
            return self._from_engine(self.engine)
        assert self.client is not None  # one of the two, checked in __init__
        return self._from_snapshot(self.client.state())

    # -- headless -------------------------------------------------------------------

    def _step_headless(
        self, engine: Engs, reward: float, stress: float | None, novelty: float | None
    ) -> EngsInfo:
        engine.step(
            self._inputs(
                reward=reward, stress=stress, novelty=() if novelty is None else (novelty,)
            )
        )
        for _ in range(self.cycles_per_step - 1):
            engine.step(self._idle)
        return self._from_engine(engine)

    def _from_engine(self, e: Engs) -> EngsInfo:
        return self._info(e, e.boredom.level)

    # -- live -----------------------------------------------------------------------

    def _step_live(self, reward: float, stress: float | None, novelty: float | None) -> EngsInfo:
        c = self.client
        assert c is not None  # one of the two, checked in __init__
        last = c.reward(reward).seq
        if stress is not None:
            last = c.stress(stress).seq
        if novelty is not None:
            last = c.novelty(novelty).seq
        deadline = time.monotonic() + LIVE_SYNC_TIMEOUT_S
        snap = c.state()
        while snap.signal_id < last:
            if time.monotonic() > deadline:
                raise EngsError(
                    f"ENGS at {c.where} did not publish signal {last} within "
                    f"{LIVE_SYNC_TIMEOUT_S} s (last published: {snap.signal_id})"
                )
            time.sleep(0.002)
            snap = c.state()
        return self._from_snapshot(snap)

    def _from_snapshot(self, s: StateSnapshot) -> EngsInfo:
        return self._info(s, s.boredom)

    def _info(self, src: Engs | StateSnapshot, boredom: float) -> EngsInfo:
        """The info of a step: the levels copied by name from the engine or its published
        snapshot (which both carry them), the boredom level and the exploration signal."""
        return EngsInfo(
            **{name: getattr(src, name) for name in _COPIED},
            boredom=boredom,
            exploration=exploration_signal(
                src.norepinephrine, boredom, self._n_eq, self._threshold
            ),
        )
