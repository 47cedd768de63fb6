"""The oracle's decision rules, as small state machines fed plain numbers.

Nothing here touches shared memory, reads a clock or logs: :mod:`engs.services.oracle.watchdog`
reads the region and feeds each rule; tests feed them crafted inputs. Times are
CLOCK_MONOTONIC nanoseconds (:mod:`engs.shared.clock`), the clock every process stamps its
records with. Every raise, clear and hysteresis rule below is written out in
docs/oracle.md under the same name.

``StalenessRule``   sync violations per channel, COGNITIVE_PAUSE (seed 003 GAP-022)
``BandRule``        ATP_EXHAUSTED (ATP < 5 %) and PANIC (N > 0.95), with a clear band
``ScramRule``       SCRAM: non-finite values, energy above a bound or growing too fast
``UnstableRule``    UNSTABLE: an empirical runaway signature of the coupled D, S, N
``AnhedoniaRule``   the anhedonia trap (seed 003 §9.1): one emergency stimulus per episode
``ManiaRule``       the mania loop (seed 003 §9.2): rate-limited serotonin boosts
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence

import numpy as np


class StalenessRule:
    """Staleness τ = t_applied − t_calc of the control state (seed 003 GAP-022).

    All channels ride in one NeurochemicalState, so one τ serves all; each channel has
    its own limit (``channel_limits_ns``: dopamine and norepinephrine 10 ms, serotonin
    50 ms soft).

    * :meth:`on_applied`, once per *newly applied* state (a new ``applied_seq`` in the
      telemetry): returns the channels whose limit τ exceeds (one sync violation each),
      raises the pause if τ > ``pause_limit_ns``, and breaks the fresh run if τ exceeds
      ``sync_limit_ns``.
    * :meth:`on_starved`, while the physics ticks and no fresh state reaches it (the
      watchdog decides, see docs/oracle.md): raises the pause, breaks the fresh run.
    * :meth:`on_published`, once per *newly published* state, with its age when the
      oracle first saw it: a fresh one (age ≤ ``sync_limit_ns``) extends the fresh run,
      a late one breaks it. The pause clears once the run reaches ``clear_states``
      (hysteresis: 10 states are 100 ms of clean flow at 100 Hz).
    """

    def __init__(
        self,
        channel_limits_ns: Mapping[str, int],
        *,
        sync_limit_ns: int,
        pause_limit_ns: int,
        clear_states: int,
    ) -> None:
        self.channel_limits_ns = dict(channel_limits_ns)
        self.sync_limit_ns = sync_limit_ns
        self.pause_limit_ns = pause_limit_ns
        self.clear_states = clear_states
        self.active = False
        self.fresh_run = 0

    def on_applied(self, tau_ns: int) -> tuple[str, ...]:
        if tau_ns > self.sync_limit_ns:
            self.fresh_run = 0
        if tau_ns > self.pause_limit_ns:
            self.active = True
        return tuple(ch for ch, lim in self.channel_limits_ns.items() if tau_ns > lim)

    def on_published(self, age_ns: int) -> None:
        if age_ns > self.sync_limit_ns:
            self.fresh_run = 0
            return
        self.fresh_run += 1
        if self.active and self.fresh_run >= self.clear_states:
            self.active = False

    def on_starved(self) -> None:
        self.active = True
        self.fresh_run = 0


class BandRule:
    """A level with a raise threshold and a clear threshold (hysteresis band).

    ``above=True`` (PANIC): raised when ``x > raise_at``, cleared when ``x < clear_at``
    (``clear_at <= raise_at``). ``above=False`` (ATP_EXHAUSTED): raised when
    ``x < raise_at``, cleared when ``x >= clear_at`` (``clear_at >= raise_at``) — the
    same comparisons as the orchestrator's own rules (docs/orchestrator.md §8). Inside
    the band, and for a non-finite ``x`` (no information; non-finite values are the
    SCRAM rule's), the state holds.
    """

    def __init__(self, raise_at: float, clear_at: float, *, above: bool) -> None:
        if (clear_at > raise_at) if above else (clear_at < raise_at):
            raise ValueError(f"clear_at {clear_at} is on the wrong side of raise_at {raise_at}")
        self.raise_at = raise_at
        self.clear_at = clear_at
        self.above = above
        self.active = False

    def update(self, x: float) -> bool:
        if not math.isfinite(x):
            return self.active
        if self.above:
            if x > self.raise_at:
                self.active = True
            elif x < self.clear_at:
                self.active = False
        elif x < self.raise_at:
            self.active = True
        elif x >= self.clear_at:
            self.active = False
        return self.active


class ScramRule:
    """SCRAM: the field diverged (seed 003 GAP-022 CRITICAL; ARCHITECTURE §2).

    Raised by any of
      * a non-finite value (:meth:`on_nonfinite`: NaN/Inf in the telemetry or in the
        state's levels, or the physics' own non-finite counter advancing);
      * energy per node V/n above ``energy_per_node_max``;
      * growth: V above ``growth_factor`` x the oldest sample kept from the last
        ``growth_window_ns`` (or longer: the newest sample at least that old), provided
        that sample was at least ``growth_floor_per_node`` per node (a field starting
        from rest grows by any factor; that is not divergence).
    Cleared after ``clear_ns`` of telemetry time in which every sample was finite, below
    ``clear_ratio`` x the bound and not growing. The clock is the physics' own tick time,
    so a stopped physics never clears it.
    """

    def __init__(
        self,
        *,
        energy_per_node_max: float,
        growth_factor: float,
        growth_window_ns: int,
        growth_floor_per_node: float,
        clear_ns: int,
        clear_ratio: float,
    ) -> None:
        self.energy_per_node_max = energy_per_node_max
        self.growth_factor = growth_factor
        self.growth_window_ns = growth_window_ns
        self.growth_floor_per_node = growth_floor_per_node
        self.clear_ns = clear_ns
        self.clear_ratio = clear_ratio
        self.active = False
        self.reason = ""
        self._hist: deque[tuple[int, float]] = deque()
        self._last_bad_ns = 0

    def _trip(self, t_ns: int, reason: str) -> bool:
        """Mark a bad sample; returns True if this raised (was not active)."""
        fresh = not self.active
        self.active = True
        self._last_bad_ns = t_ns
        if fresh:
            self.reason = reason
        return fresh

    def on_nonfinite(self, t_ns: int, what: str) -> bool:
        """A non-finite value seen at ``t_ns``; True if this raised SCRAM."""
        self._hist.clear()
        return self._trip(t_ns, f"non-finite {what}")

    def on_energy(self, t_ns: int, energy: float, n_nodes: int) -> bool:
        """One new telemetry sample; True if this raised SCRAM."""
        if not math.isfinite(energy):
            return self.on_nonfinite(t_ns, "energy")
        hist = self._hist
        if hist and t_ns <= hist[-1][0]:
            hist.clear()  # a restarted physics: a new history
        hist.append((t_ns, energy))
        while len(hist) >= 2 and t_ns - hist[1][0] >= self.growth_window_ns:
            hist.popleft()
        n = max(n_nodes, 1)
        t0, e0 = hist[0]
        raised = False
        if energy / n > self.energy_per_node_max:
            raised = self._trip(
                t_ns, f"energy {energy:.6g} = {energy / n:.6g}/node above the bound"
            )
        elif e0 >= self.growth_floor_per_node * n and energy > self.growth_factor * e0:
            raised = self._trip(
                t_ns, f"energy grew x{energy / e0:.3g} in {(t_ns - t0) / 1e9:.3g} s"
            )
        elif self.active and energy / n > self.clear_ratio * self.energy_per_node_max:
            self._last_bad_ns = t_ns  # inside the hysteresis band: not yet healthy
        if self.active and t_ns - self._last_bad_ns >= self.clear_ns:
            self.active = False
        return raised

    def adopt(self, t_ns: int) -> None:
        """Start active (a bit left by a previous oracle): the clear rule applies."""
        self._trip(t_ns, "adopted from a previous oracle")


class UnstableRule:
    """UNSTABLE: an empirical runaway signature of the coupled levels (D, S, N).

    The oracle cannot see the coupling matrix, so it looks for what an unstable one
    does. For dx/dt = M(x − x_eq) + …, one control step is proportional to the
    deviation from equilibrium, so *steps growing exponentially mean a deviation growing
    exponentially* — no x_eq needed. Per newly published state the rule looks at the
    trailing run of steps |Δ(D, S, N)| per cycle that are visible (≥ ``min_step``),
    at most ``window`` cycles long, with no signal accepted during it (``signal_id``
    constant: the steps are the system's own motion). The run is *divergent* when it is
    at least ``min_run`` cycles long and log(step) rises along it as a straight line
    (least-squares slope > 0, R² ≥ ``R2_MIN``) by a factor ≥ ``growth_ratio`` over the
    run. A stable system relaxes (steps shrink), a constant push into a bound moves in
    equal steps, noise has no trend: none passes.

    Raised when a level is pinned at a bound (within ``bound_eps`` of 0 or 1) within
    ``window`` cycles of a divergent run, with no signal since. Cleared after
    ``clear_cycles`` cycles with no level pinned and no divergent run.
    Limits (docs/oracle.md): a runaway faster than ``min_run`` cycles from visible to
    pinned, or one hidden by frequent signals, is missed; the orchestrator's own
    spectral abscissa would be exact.
    """

    R2_MIN = 0.9

    def __init__(
        self,
        *,
        window: int,
        min_run: int,
        growth_ratio: float,
        min_step: float,
        bound_eps: float,
        clear_cycles: int,
    ) -> None:
        if not 3 <= min_run <= window:
            raise ValueError(f"min_run must be in 3..window ({window}), got {min_run}")
        self.window = window
        self.min_run = min_run
        self.growth_ratio = growth_ratio
        self.min_step = min_step
        self.bound_eps = bound_eps
        self.clear_cycles = clear_cycles
        n = window + 1
        self._x = np.zeros((n, 3))
        self._seq = np.zeros(n, dtype=np.int64)
        self._sig = np.zeros(n, dtype=np.uint64)
        self._count = 0
        self._head = 0  # next write position
        self._growth_seq: int | None = None
        self._growth_signal = 0
        self._calm_since: int | None = None
        self.active = False
        self.last_growth = math.nan  # growth factor of the newest divergent run
        self.last_run = 0

    def on_state(self, seq: int, levels: Sequence[float], signal_id: int) -> bool:
        """One newly published state; returns the active flag."""
        if not all(math.isfinite(v) for v in levels):
            return self.active  # the SCRAM rule's business
        n = self.window + 1
        if self._count and seq <= int(self._seq[(self._head - 1) % n]):
            self._count = 0  # seq went back: a restarted orchestrator
            self._growth_seq = None
        self._x[self._head] = levels
        self._seq[self._head] = seq
        self._sig[self._head] = signal_id
        self._head = (self._head + 1) % n
        self._count = min(self._count + 1, n)
        if self._divergent():
            self._growth_seq = seq
            self._growth_signal = signal_id
        eps = self.bound_eps
        pinned = any(v <= eps or v >= 1.0 - eps for v in levels)
        g = self._growth_seq
        if pinned and g is not None and seq - g <= self.window and signal_id == self._growth_signal:
            self.active = True
        if self.active:
            if pinned or self._growth_seq == seq:
                self._calm_since = None
            elif self._calm_since is None:
                self._calm_since = seq
            elif seq - self._calm_since >= self.clear_cycles:
                self.active = False
                self._growth_seq = None
        return self.active

    def _divergent(self) -> bool:
        if self._count <= self.min_run:
            return False
        n = self.window + 1
        a, b = (self._head - 2) % n, (self._head - 1) % n
        last = math.dist(self._x[a], self._x[b]) / max(int(self._seq[b] - self._seq[a]), 1)
        if last < self.min_step:
            return False  # the newest step is not visible: no run ends here (cheap exit)
        idx = (self._head - self._count + np.arange(self._count)) % n  # oldest first
        x, seq, sig = self._x[idx], self._seq[idx], self._sig[idx]
        steps = np.linalg.norm(np.diff(x, axis=0), axis=1) / np.maximum(np.diff(seq), 1)
        visible = steps >= self.min_step
        if not visible[-1]:
            return False
        # The trailing run of visible steps taken entirely under the newest signal id
        # (signal ids only grow, so a step from a state with that id has no signal in it).
        same = sig[:-1] == sig[-1]
        ok = visible & same
        run = len(ok) if ok.all() else len(ok) - 1 - int(np.flatnonzero(~ok)[-1])
        if run < self.min_run:
            return False
        y = np.log(steps[-run:])
        t = np.arange(run, dtype=np.float64)
        slope, intercept = np.polyfit(t, y, 1)
        resid = y - (slope * t + intercept)
        ss_tot = float(((y - y.mean()) ** 2).sum())
        r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else 0.0
        growth = math.exp(slope * (run - 1))
        if slope > 0 and r2 >= self.R2_MIN and growth >= self.growth_ratio:
            self.last_growth, self.last_run = growth, run
            return True
        return False

    def adopt(self) -> None:
        """Start active (a bit left by a previous oracle): the clear rule applies."""
        self.active = True
        self._calm_since = None


class AnhedoniaRule:
    """The anhedonia trap (seed 003 §9.1): D stuck near zero, so plasticity η → 0.

    The moving average of D over the last ``ma_cycles`` published states (simple mean)
    is tracked per newly published state. An *episode* starts at the first cycle whose
    average is below ``below``; when the average has stayed below for more than
    ``cycles`` control cycles (counted by ``seq``, so states the oracle missed still
    count as cycles), :meth:`on_state` returns True once: request one emergency
    stimulus. The episode ends when the average reaches ``below`` again; the request
    re-arms only once the average has risen to ``rearm_above`` (hysteresis), so a level
    hovering at the threshold cannot trigger a stimulus per wobble.
    """

    def __init__(self, *, below: float, cycles: int, ma_cycles: int, rearm_above: float) -> None:
        if rearm_above < below:
            raise ValueError(f"rearm_above {rearm_above} must be >= below {below}")
        self.below = below
        self.cycles = cycles
        self.rearm_above = rearm_above
        self._ring = np.zeros(ma_cycles)
        self._n = 0
        self._i = 0
        self._sum = 0.0
        self._last_seq = 0
        self._since: int | None = None
        self.armed = True
        self.moving_average = math.nan

    def on_state(self, seq: int, dopamine: float) -> bool:
        if not math.isfinite(dopamine):
            return False
        if seq <= self._last_seq:
            self._n = self._i = 0  # a restarted orchestrator: a new average
            self._sum = 0.0
            self._since = None
        self._last_seq = seq
        ring = self._ring
        if self._n == len(ring):
            self._sum -= ring[self._i]
        else:
            self._n += 1
        ring[self._i] = dopamine
        self._sum += dopamine
        self._i = (self._i + 1) % len(ring)
        ma = float(ring[: self._n].mean()) if self._n < len(ring) else self._sum / self._n
        self.moving_average = ma
        if ma >= self.below:
            self._since = None
            if ma >= self.rearm_above:
                self.armed = True
            return False
        if self._since is None:
            self._since = seq
        if self.armed and seq - self._since >= self.cycles:
            self.armed = False
            return True
        return False

    @property
    def in_episode(self) -> bool:
        return self._since is not None


class ManiaRule:
    """The mania loop (seed 003 §9.2): context switching too fast.

    Fed the orchestrator's cumulative ``engs_orchestrator_context_switches_total`` with
    the time it was read. The rate is (count now − count then) / (now − then) against
    the newest sample at least ``window_ns`` old; no judgement before a full window.
    An episode starts when the rate exceeds ``rate_per_s`` and ends when it falls below
    ``clear_ratio`` x that (hysteresis). :meth:`on_sample` returns True when a serotonin
    boost should be requested: at the start of an episode, and again every
    ``cooldown_ns`` while it lasts — never twice within ``cooldown_ns``.
    """

    def __init__(
        self, *, rate_per_s: float, window_ns: int, clear_ratio: float, cooldown_ns: int
    ) -> None:
        self.rate_per_s = rate_per_s
        self.window_ns = window_ns
        self.clear_ratio = clear_ratio
        self.cooldown_ns = cooldown_ns
        self._hist: deque[tuple[int, int]] = deque()
        self._last_request_ns: int | None = None
        self.active = False
        self.rate_per_s_now = math.nan

    def on_sample(self, t_ns: int, count: int) -> bool:
        hist = self._hist
        if hist and (count < hist[-1][1] or t_ns <= hist[-1][0]):
            hist.clear()  # counter or clock went back: start over
        hist.append((t_ns, count))
        while len(hist) >= 2 and t_ns - hist[1][0] >= self.window_ns:
            hist.popleft()
        t0, c0 = hist[0]
        if t_ns - t0 < self.window_ns:
            return False
        rate = (count - c0) * 1e9 / (t_ns - t0)
        self.rate_per_s_now = rate
        if rate > self.rate_per_s:
            self.active = True
        elif rate < self.clear_ratio * self.rate_per_s:
            self.active = False
        if not self.active:
            return False
        last = self._last_request_ns
        if last is not None and t_ns - last < self.cooldown_ns:
            return False
        self._last_request_ns = t_ns
        return True
