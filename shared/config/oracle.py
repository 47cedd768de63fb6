"""``[oracle]``: the watchdog (services/oracle), docs/oracle.md."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from engs.shared.config.base import (
    PosFloat,
    Section,
)


class OracleConfig(Section, frozen=True):
    """The watchdog (services/oracle). Every rule is documented in docs/oracle.md."""

    poll_hz: Annotated[float, Meta(ge=200, le=10_000)] = 250.0
    """Polls per second, on absolute deadlines."""
    exit_when_physics_lost_s: Annotated[float, Meta(ge=0, le=3600)] = 0.0
    """Exit (status 3) once the physics, seen alive, has not beaten for this long; 0: never.
    Under docker compose a crashed physics container comes back with a fresh /dev/shm, and
    this makes the oracle restart into it (ops/engs/engs.toml sets 5 s)."""
    heartbeat_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 1.0
    """A running process whose heartbeat is older than this is DEAD."""
    startup_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 30.0
    """A process still STARTING may go this long without a beat (CuPy start-up)."""
    output_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 0.5
    """Physics telemetry or orchestrator state older than this, while the heartbeat is
    fresh, makes the writer FROZEN (tick counter stopped, or a seqlock left odd)."""
    sync_limit_s: Annotated[float, Meta(gt=0, le=10)] = 0.010
    """Staleness limit of dopamine and norepinephrine (seed 003 GAP-022: 10 ms)."""
    serotonin_sync_limit_s: Annotated[float, Meta(gt=0, le=10)] = 0.050
    """Soft staleness limit of serotonin (seed 003 GAP-022: 50 ms)."""
    pause_limit_s: Annotated[float, Meta(gt=0, le=10)] = 0.050
    """Staleness above which COGNITIVE_PAUSE is raised (seed 003 GAP-022: 50 ms)."""
    pause_clear_states: Annotated[int, Meta(ge=1, le=1_000_000)] = 10
    """COGNITIVE_PAUSE clears after this many consecutive fresh states."""
    log_interval_s: Annotated[float, Meta(gt=0, le=3600)] = 1.0
    """At most one log line per this interval for each repeating warning."""
    scram_energy_per_node_max: PosFloat = 1.0e6
    """SCRAM when the field energy V = Σ|Ψ|² per node exceeds this (field units²)."""
    scram_growth_factor: Annotated[float, Meta(gt=1)] = 100.0
    """SCRAM when V grows by more than this factor within ``scram_growth_window_s``."""
    scram_growth_window_s: Annotated[float, Meta(gt=0, le=3600)] = 1.0
    """Window of the energy-growth SCRAM rule, s."""
    scram_growth_floor_per_node: PosFloat = 1.0
    """The growth test applies only from an energy per node at least this large."""
    scram_clear_s: Annotated[float, Meta(gt=0, le=3600)] = 1.0
    """SCRAM clears after this long of healthy telemetry."""
    scram_clear_ratio: Annotated[float, Meta(gt=0, le=1)] = 0.5
    """Healthy means V per node at most this fraction of the bound (hysteresis)."""
    atp_exhausted_below: Annotated[float, Meta(ge=0, le=1)] = 0.05
    """Raise ATP_EXHAUSTED below this ATP ratio (GAP-022: 5 %)."""
    atp_clear_above: Annotated[float, Meta(ge=0, le=1)] = 0.10
    """Clear ATP_EXHAUSTED at or above this ATP ratio."""
    panic_above: Annotated[float, Meta(ge=0, le=1)] = 0.95
    """Raise PANIC above this norepinephrine level (GAP-022: 0.95)."""
    panic_clear_below: Annotated[float, Meta(ge=0, le=1)] = 0.85
    """Clear PANIC below this norepinephrine level."""
    unstable_window_cycles: Annotated[int, Meta(ge=8, le=100_000)] = 500
    """Longest run of control cycles the empirical instability test fits."""
    unstable_min_run_cycles: Annotated[int, Meta(ge=3, le=100_000)] = 20
    """Shortest run of visibly moving cycles the instability test judges."""
    unstable_growth_ratio: Annotated[float, Meta(gt=1)] = 2.0
    """Exponential step growth over the run that counts as divergence."""
    unstable_min_step: PosFloat = 1.0e-4
    """Mean |Δ(D, S, N)| per cycle below which steps are noise, not divergence."""
    unstable_bound_eps: Annotated[float, Meta(gt=0, lt=0.5)] = 1.0e-3
    """A level within this of 0 or 1 is pinned at a bound."""
    unstable_clear_cycles: Annotated[int, Meta(ge=1, le=1_000_000)] = 100
    """Clear the empirical UNSTABLE after this many states with no level pinned and no
    divergent run."""
    anhedonia_below: Annotated[float, Meta(gt=0, le=1)] = 0.1
    """Anhedonia when the moving average of D stays below this (seed 003 §9.1: 0.1) for
    ``anhedonia_cycles`` states."""
    anhedonia_cycles: Annotated[int, Meta(ge=1, le=100_000_000)] = 1000
    """Control cycles the moving average of D must stay low (seed 003 §9.1: > 1000)."""
    anhedonia_ma_cycles: Annotated[int, Meta(ge=1, le=100_000)] = 100
    """Length of the moving average of D, in control cycles."""
    anhedonia_rearm_above: Annotated[float, Meta(gt=0, le=1)] = 0.15
    """A new anhedonia episode needs the moving average back above this first."""
    mania_switches_per_s: PosFloat = 1.0
    """Context-switch rate (orchestrator counter) above which mania is declared."""
    mania_window_s: Annotated[float, Meta(gt=0, le=3600)] = 10.0
    """Window over which the context-switch rate is measured, s."""
    mania_clear_ratio: Annotated[float, Meta(gt=0, le=1)] = 0.5
    """Mania ends when the rate falls below this fraction of the threshold."""
    mania_cooldown_s: Annotated[float, Meta(ge=0, le=86400)] = 30.0
    """At most one serotonin boost request per this interval."""

    def __post_init__(self) -> None:
        # (lower, higher): each hysteresis band and limit pair must be ordered.
        for lo, hi in (
            ("atp_exhausted_below", "atp_clear_above"),
            ("panic_clear_below", "panic_above"),
            ("sync_limit_s", "serotonin_sync_limit_s"),
            ("sync_limit_s", "pause_limit_s"),
            ("anhedonia_below", "anhedonia_rearm_above"),
            ("unstable_min_run_cycles", "unstable_window_cycles"),
        ):
            if not getattr(self, lo) <= getattr(self, hi):
                raise ValueError(
                    f"`{lo}` = {getattr(self, lo)} must not exceed `{hi}` = {getattr(self, hi)}"
                )
