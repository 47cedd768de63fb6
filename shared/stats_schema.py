"""The stats schema: every counter and histogram slot of every process's stats block,
with its Prometheus name, HELP text and labels — written here once. The oracle exports
them as they are (:mod:`engs.services.oracle.collector`); the layout hash covers them
(:func:`engs.shared.layout.layout_hash`), so processes built from another schema are
refused on attach. Append only.

The label vocabularies are derived, not repeated: ``SIGNAL_TYPES`` from the message tags
and ``REJECT_REASONS`` from :data:`engs.shared.messages.RejectReason`.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

from engs.shared.layout import N_COUNTERS, N_HISTOGRAMS, REQUEST_KINDS, Cause, Process
from engs.shared.messages import REQUEST_CLASSES, TAG, Auth, RejectReason


@dataclass(frozen=True)
class CounterSpec:
    """One counter slot: a Prometheus counter name (with ``_total``), its HELP text (the
    same for every slot of one name) and its labels."""

    name: str
    help: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class HistogramSpec:
    """One histogram slot: a Prometheus histogram name in seconds."""

    name: str
    help: str


#: The wire tag of every request counted by type, in slot order: every request of
#: :mod:`engs.shared.messages` but ``auth`` (a handshake, not a signal).
SIGNAL_TYPES: tuple[str, ...] = tuple(TAG[cls] for cls in REQUEST_CLASSES if cls is not Auth)
#: :data:`engs.shared.messages.RejectReason`, in slot order.
REJECT_REASONS: tuple[str, ...] = typing.get_args(RejectReason)
SYNC_CHANNELS: tuple[str, ...] = ("dopamine", "serotonin", "norepinephrine")


def _labelled(name: str, help_: str, key: str, values: tuple[str, ...]) -> tuple[CounterSpec, ...]:
    return tuple(CounterSpec(name, help_, ((key, v),)) for v in values)


_CAUSE_NAMES = tuple(c.name.lower() for c in Cause if c.name)
_INTERRUPTS = (
    "engs_interrupts_total",
    "CRITICAL interrupts raised, by cause, summed over the raisers (orchestrator and oracle).",
    "cause",
    _CAUSE_NAMES,
)

#: Counter slots per process, in slot order. Append only; any change bumps the hash.
COUNTERS: dict[Process, tuple[CounterSpec, ...]] = {
    Process.PHYSICS: (
        CounterSpec("engs_physics_ticks_total", "Physics ticks completed."),
        CounterSpec(
            "engs_physics_deadline_misses_total",
            "Physics ticks that missed their absolute deadline.",
        ),
        CounterSpec(
            "engs_physics_cfl_clamps_total", "Ticks on which the CFL guard clamped the wave speed."
        ),
        CounterSpec(
            "engs_physics_nonfinite_total", "Non-finite field values detected by the physics."
        ),
        CounterSpec("engs_physics_states_applied_total", "Control states the physics applied."),
        CounterSpec(
            "engs_physics_stale_reads_total",
            "Control-state reads that returned the last good copy.",
        ),
        CounterSpec(
            "engs_physics_rt_setup_failures_total", "Real-time setup steps that failed (not fatal)."
        ),
        *_labelled(
            "engs_physics_interrupts_acted_total",
            "CRITICAL interrupts the physics acted on, by cause.",
            "cause",
            _CAUSE_NAMES,
        ),
    ),
    Process.ORCHESTRATOR: (
        CounterSpec("engs_orchestrator_cycles_total", "Control cycles completed."),
        CounterSpec(
            "engs_orchestrator_deadline_misses_total", "Control cycles that missed their deadline."
        ),
        CounterSpec(
            "engs_orchestrator_context_switches_total", "Task context switches (the mania input)."
        ),
        CounterSpec(
            "engs_curiosity_goals_total", "Curiosity goals injected (boredom over its threshold)."
        ),
        CounterSpec("engs_naps_total", "Naps entered to recharge ATP."),
        *_labelled(
            "engs_oracle_requests_applied_total",
            "Oracle requests the orchestrator applied, by kind.",
            "kind",
            REQUEST_KINDS,
        ),
        *_labelled(
            "engs_signals_total",
            "Signals received on the signal socket, by type.",
            "type",
            SIGNAL_TYPES,
        ),
        *_labelled(
            "engs_signals_applied_total",
            "Signals applied to the dynamics, by type.",
            "type",
            SIGNAL_TYPES,
        ),
        *_labelled(
            "engs_signals_rejected_total", "Signals rejected, by reason.", "reason", REJECT_REASONS
        ),
        *_labelled(*_INTERRUPTS),
    ),
    Process.ORACLE: (
        CounterSpec("engs_oracle_polls_total", "Oracle watchdog polls."),
        *_labelled(
            "engs_sync_violations_total",
            "Applied control states older than the channel's staleness limit (10 ms "
            "dopamine/norepinephrine, 50 ms serotonin), once per applied state.",
            "channel",
            SYNC_CHANNELS,
        ),
        *_labelled(
            "engs_oracle_requests_total",
            "Requests the oracle sent to the orchestrator, by kind.",
            "kind",
            REQUEST_KINDS,
        ),
        *_labelled(*_INTERRUPTS),
    ),
    Process.SUPERVISOR: (
        *_labelled(
            "engs_restarts_total",
            "Process restarts by the supervisor, by process.",
            "process",
            ("physics", "orchestrator", "oracle"),
        ),
    ),
}

#: Histogram slots per process, in slot order.
HISTOGRAMS: dict[Process, tuple[HistogramSpec, ...]] = {
    Process.PHYSICS: (
        HistogramSpec("engs_physics_tick_seconds", "Compute time of one physics tick."),
        HistogramSpec(
            "engs_physics_tick_lateness_seconds", "Tick start minus its absolute deadline."
        ),
        HistogramSpec("engs_state_staleness_seconds", "t_applied - t_calc of each applied state."),
        HistogramSpec(
            "engs_signal_latency_seconds", "Socket receipt to first physics tick applying it."
        ),
        HistogramSpec(
            "engs_interrupt_latency_seconds", "CRITICAL raised to the physics acting on it."
        ),
    ),
    Process.ORCHESTRATOR: (
        HistogramSpec("engs_orchestrator_cycle_seconds", "Compute time of one control cycle."),
        HistogramSpec(
            "engs_orchestrator_cycle_lateness_seconds", "Cycle start minus its deadline."
        ),
    ),
    Process.ORACLE: (HistogramSpec("engs_oracle_poll_seconds", "Time of one oracle poll."),),
    Process.SUPERVISOR: (),
}


def counter_index(process: Process, name: str, /, **labels: str) -> int:
    """Slot index of a counter; raises KeyError naming the counter if absent."""
    key = tuple(sorted(labels.items()))
    for i, spec in enumerate(COUNTERS[process]):
        if spec.name == name and tuple(sorted(spec.labels)) == key:
            return i
    raise KeyError(f"no counter {name}{labels or ''} in the {process.name.lower()} stats schema")


def histogram_index(process: Process, name: str) -> int:
    """Slot index of a histogram; raises KeyError naming it if absent."""
    for i, spec in enumerate(HISTOGRAMS[process]):
        if spec.name == name:
            return i
    raise KeyError(f"no histogram {name} in the {process.name.lower()} stats schema")


for _p in Process:
    if len(COUNTERS[_p]) > N_COUNTERS or len(HISTOGRAMS[_p]) > N_HISTOGRAMS:
        raise RuntimeError(f"stats schema of {_p.name} exceeds its slot")  # import-time check
