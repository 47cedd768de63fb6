"""The shared-memory layout, defined once.

One POSIX shared-memory region per instance holds every block below, each starting on
its own 64-byte cache line (ARCHITECTURE §2). The whole region is a single numpy
structured dtype built by :func:`build_layout`; every process gets its offsets from
that dtype and from nowhere else.

Blocks, their writers and readers::

    header       written once by the creator; read by every attacher
    meta         the instance's area names, written once by the creator
    control      NeurochemicalState, double-buffered seqlock; writer: orchestrator;
                 readers: physics (each tick), oracle, ``engs status``
    interrupt    cause word (4 lanes x 16 bits, one writer per lane), raise times,
                 and an emergency NeurochemicalState (seqlock; writer: orchestrator)
    telemetry    PhysicsTelemetry, double-buffered seqlock; writer: physics;
                 readers: orchestrator, oracle, ``engs status``
    requests     oracle → orchestrator requests (anhedonia: emergency stimulus; mania:
                 serotonin boost) as monotonic counters; the oracle writes
                 ``requested``, the orchestrator ``applied`` (own cache lines), and
                 applies each increment exactly once
    heartbeats   one 64-byte slot per process, single writer each
    stats        one slot per process: counters and fixed-bucket histograms,
                 single writer each; read by the oracle's exporter
    deadlines    DeadlineReport, seqlock; writer: the physics' reporter thread (1 Hz):
                 achieved tick rate, deadline misses, tick and staleness p99 over the
                 last window; readers: oracle, supervisor, healthcheck, ``engs status``
    endpoints    where the instance listens, one seqlock each: ``signals`` (writer:
                 orchestrator, the bound TCP address and Unix path) and ``metrics``
                 (writer: oracle); readers: ``engs send/status --instance``

Invariants (asserted in tests/shared/test_layout.py):
* every block and every seqlock slot starts at a multiple of 64 bytes;
* every scalar field is naturally aligned (8-byte fields at 8-byte offsets), so a
  plain load or store of one field is single-copy atomic on x86-64 and AArch64;
* the layout hash in the header covers the dtype, the histogram buckets and the
  stats schema, so a process built from another layout is refused on attach.

Time fields ending in ``_ns`` are CLOCK_MONOTONIC nanoseconds (:mod:`engs.shared.clock`)
unless they end in ``_wall_ns``.
"""

from __future__ import annotations

import enum
import zlib
from typing import Any

import numpy as np

LAYOUT_VERSION = 2
MAGIC = int.from_bytes(b"ENGS-SHM", "little")
CACHE_LINE = 64

#: Neuromodulators carried per area (seed 002 §1), in this column order.
NEUROMODULATORS: tuple[str, ...] = ("DA", "5HT", "NE", "OXT", "TST", "HA", "ORX")
N_NT = len(NEUROMODULATORS)


class Process(enum.IntEnum):
    """Slot index of each process in the heartbeat and stats arrays."""

    PHYSICS = 0
    ORCHESTRATOR = 1
    ORACLE = 2
    SUPERVISOR = 3


N_PROCESSES = len(Process)


class Cause(enum.IntFlag):
    """CRITICAL interrupt causes (ARCHITECTURE §2). One bit each, 16 bits at most."""

    SCRAM = 1 << 0  # energy divergence or NaN in the field
    ATP_EXHAUSTED = 1 << 1  # ATP below 5 %
    PANIC = 1 << 2  # norepinephrine above 0.95
    UNSTABLE = 1 << 3  # coupling matrix not stable
    COGNITIVE_PAUSE = 1 << 4  # state staleness above 50 ms
    MANUAL = 1 << 5  # raised by an operator


ALL_CAUSES = Cause(sum(int(c) for c in Cause))
N_CAUSE_BITS = 16


class Lane(enum.IntEnum):
    """Writer lanes of the interrupt word: each 16-bit lane has exactly one writer."""

    ORCHESTRATOR = 0
    ORACLE = 1
    PHYSICS = 2
    OPERATOR = 3


N_LANES = len(Lane)


class HeartbeatState(enum.IntEnum):
    """Lifecycle state a process publishes in its heartbeat slot."""

    ABSENT = 0  # slot never written (or process stopped cleanly and said so)
    STARTING = 1
    RUNNING = 2
    SAFE_MODE = 3  # running, but acting on a CRITICAL interrupt
    STOPPING = 4
    STOPPED = 5
    FAILED = 6


class Mode(enum.IntFlag):
    """Mode bits carried by NeurochemicalState.flags and PhysicsTelemetry.mode."""

    NAP = 1 << 0  # the orchestrator is napping (recharging ATP)
    CURIOSITY = 1 << 1  # boredom crossed the threshold; a curiosity goal is out
    SAFE = 1 << 2  # physics applies emergency damping (CRITICAL set)
    PLASTICITY_OFF = 1 << 3  # physics runs with plasticity disabled


class Priority(enum.IntEnum):
    """NeurochemicalState.priority: how urgent the state the orchestrator published is."""

    BACKGROUND = 0
    HIGH = 1  # the control cycle's regular state
    CRITICAL = 2  # a CRITICAL interrupt is active (also the emergency state's)


class RegionFlags(enum.IntFlag):
    """Pinning outcome of one process's mapping, recorded in its heartbeat slot."""

    MLOCKED = 1 << 0
    MLOCK_FAILED = 1 << 1
    CUDA_REGISTERED = 1 << 2
    CUDA_REGISTER_FAILED = 1 << 3


# ---------------------------------------------------------------------------
# Histograms: fixed buckets from 25 µs to 100 ms (upper bounds, in ns). The 10 ms
# and 50 ms staleness limits of GAP-022 are bucket edges, so "fraction above the
# limit" is exact in Prometheus.
HIST_BOUNDS_NS: tuple[int, ...] = (
    25_000, 50_000, 100_000, 200_000, 300_000, 500_000, 750_000,
    1_000_000, 1_500_000, 2_000_000, 3_000_000, 5_000_000, 7_500_000,
    10_000_000, 12_500_000, 15_000_000, 20_000_000, 30_000_000,
    50_000_000, 75_000_000, 100_000_000,
)  # fmt: skip
N_BUCKETS = len(HIST_BOUNDS_NS) + 1  # the last bucket is +Inf
N_COUNTERS = 64  # per process
N_HISTOGRAMS = 8  # per process
AREA_NAME_BYTES = 32


#: Oracle → orchestrator request kinds (seed 003 §9), in slot order.
REQUEST_KINDS: tuple[str, ...] = ("emergency_stimulus", "serotonin_boost")
N_REQUESTS = 8  # slots reserved


# ---------------------------------------------------------------------------
# dtype construction


def _align_of(dt: np.dtype[Any]) -> int:
    if dt.fields is not None:
        return CACHE_LINE if dt.itemsize % CACHE_LINE == 0 else 8
    return int(dt.base.itemsize)


def _pad(n: int, to: int) -> int:
    return (n + to - 1) // to * to


FieldDef = tuple[str, Any] | tuple[str, Any, tuple[int, ...]]


def _record(fields: list[FieldDef], *, align: int = CACHE_LINE) -> np.dtype[Any]:
    """A structured dtype with explicit offsets: each field naturally aligned, the
    record padded to a multiple of ``align``."""
    names: list[str] = []
    formats: list[Any] = []
    offsets: list[int] = []
    off = 0
    for fdef in fields:
        name, fmt = fdef[0], fdef[1]
        base = np.dtype(fmt)
        dt = np.dtype((base, fdef[2])) if len(fdef) == 3 else base
        off = _pad(off, _align_of(base))
        names.append(name)
        formats.append(dt)
        offsets.append(off)
        off += dt.itemsize
    return np.dtype(
        {"names": names, "formats": formats, "offsets": offsets, "itemsize": _pad(off, align)}
    )


def state_dtype(max_areas: int) -> np.dtype[Any]:
    """NeurochemicalState: what the orchestrator publishes for the physics (100 Hz).

    ``spectral_abscissa`` is max Re λ of the (cost-scaled) coupling matrix the dynamics
    integrate with, in s⁻¹: < 0 is stable; the oracle raises UNSTABLE at >= 0.
    Global levels are the ENGS state (seed 003 GAP-005 x = [D, S, N, ATP] plus cortisol
    and boredom), all in [0, 1] except ``atp_reserve`` (NMU), ``td_error`` (the critic's
    bounded δ), ``phasic_dopamine`` (δ with negative errors compressed) and
    ``reward_rate`` (R̄, the average reward per second: tonic dopamine).
    Per-area arrays hold ``n_areas`` valid rows; rows beyond are zero and ignored.
    The per-area coefficients are dimensionless multipliers of the physics' own base
    constants (the physics owns units; the orchestrator owns neurochemistry):

    ``area_plasticity``  η/η₀, Hebbian rate gate from the area's dopamine
    ``area_elasticity``  λ/λ₀, restoring-force gate from the area's serotonin
    ``area_speed``       v/v₀ = 1/s_eff, from the area's norepinephrine
    ``area_damping``     γ/γ₀ multiplier
    ``area_drive``       sustained drive amplitude (field units)
    ``area_stimulus``    one-shot stimulus amplitude, applied once per new ``seq``
    ``area_noise``       background-noise multiplier
    ``area_nt``          effective levels of the seven neuromodulators (NEUROMODULATORS)
    """
    a = max_areas
    return _record(
        [
            ("seq", "<u8"),  # publication number, strictly increasing
            ("t_calc_ns", "<i8"),  # when the orchestrator computed it
            ("signal_id", "<u8"),  # newest accepted signal this state includes (0: none)
            ("signal_t_ns", "<i8"),  # that signal's socket receipt time
            ("flags", "<u4"),  # Mode bits
            ("priority", "<u4"),  # Priority
            ("n_areas", "<u4"),
            ("dopamine", "<f8"),
            ("serotonin", "<f8"),
            ("norepinephrine", "<f8"),
            ("atp_ratio", "<f8"),
            ("atp_reserve", "<f8"),
            ("cortisol", "<f8"),
            ("boredom", "<f8"),
            ("td_error", "<f8"),
            ("phasic_dopamine", "<f8"),  # δ with negative errors compressed
            ("reward_rate", "<f8"),  # R̄, tonic dopamine: average reward per second
            ("relevance_gate", "<f8"),
            ("plasticity_gate", "<f8"),
            ("elasticity_gate", "<f8"),
            ("speed_gain", "<f8"),
            ("spectral_abscissa", "<f8"),  # max Re λ of the coupling matrix in force, 1/s
            ("area_plasticity", "<f4", (a,)),
            ("area_elasticity", "<f4", (a,)),
            ("area_speed", "<f4", (a,)),
            ("area_damping", "<f4", (a,)),
            ("area_drive", "<f4", (a,)),
            ("area_stimulus", "<f4", (a,)),
            ("area_noise", "<f4", (a,)),
            ("area_nt", "<f4", (a, N_NT)),
        ],
        align=8,
    )


def telemetry_dtype(max_areas: int) -> np.dtype[Any]:
    """PhysicsTelemetry: what the physics publishes after each tick (1 kHz).

    ``applied_*`` describe the NeurochemicalState this tick used (phase coherence: one
    snapshot per tick), so the oracle computes staleness τ = t_applied − t_calc and
    signal latency from them. Energies are in field units; entropy in bits.
    """
    a = max_areas
    return _record(
        [
            ("tick", "<u8"),
            ("t_ns", "<i8"),  # tick start
            ("tick_ns", "<i8"),  # compute time of the tick
            ("lateness_ns", "<i8"),  # tick start minus its deadline
            ("applied_seq", "<u8"),
            ("applied_t_calc_ns", "<i8"),
            ("applied_t_ns", "<i8"),  # tick start of the first tick applying applied_seq
            ("applied_signal_id", "<u8"),
            ("applied_signal_t_ns", "<i8"),
            ("interrupt_raised_t_ns", "<i8"),  # newest raise the physics has acted on
            ("interrupt_acted_t_ns", "<i8"),  # when it acted on it
            ("n_nodes", "<u8"),
            ("cfl_clamps", "<u8"),
            ("nonfinite", "<u8"),
            ("interrupt_mask", "<u4"),  # causes set at this tick's start
            ("mode", "<u4"),  # Mode bits
            ("n_areas", "<u4"),
            ("backend", "<u4"),  # 0 numpy, 1 cupy, 2 numba
            ("energy", "<f8"),  # V = Σ|Ψ|² (seed 003 §3.1)
            ("hamiltonian", "<f8"),
            ("entropy_bits", "<f8"),
            ("entropy_err_bits", "<f8"),  # standard error of the estimate (0 when exact)
            ("kinetic_cost", "<f8"),
            ("metabolic_cost", "<f8"),
            ("area_activity", "<f4", (a,)),
            ("area_metric_grad", "<f4", (a,)),
        ],
        align=8,
    )


def deadline_dtype() -> np.dtype[Any]:
    """DeadlineReport: the physics' deadline health over its last window (1 Hz).

    Written by the reporter thread of the physics process (never the 1 kHz loop) from
    the physics' own counters and histograms: ``*_window`` values are differences
    between two samples ``window_ns`` apart (at most ~10 s). Quantiles are interpolated
    within the histogram bucket like Prometheus' ``histogram_quantile``; NaN when the
    window holds no observation. The rule that judges it is
    :func:`engs.shared.deadlines.judge`.
    """
    return _record(
        [
            ("t_ns", "<i8"),  # when this report was computed (0: never)
            ("window_ns", "<i8"),  # the span its *_window values cover
            ("target_hz", "<f8"),  # physics.tick_hz
            ("achieved_hz", "<f8"),  # ticks_window / window
            ("ticks_total", "<u8"),
            ("misses_total", "<u8"),
            ("ticks_window", "<u8"),
            ("misses_window", "<u8"),
            ("tick_p99_s", "<f8"),
            ("staleness_p99_s", "<f8"),
            ("lateness_p99_s", "<f8"),
            ("pid", "<i8"),  # the physics process that wrote it
        ],
        align=8,
    )


#: Longest address an endpoint record holds (a Unix socket path is at most 107 bytes).
ENDPOINT_BYTES = 112


def signals_endpoint_dtype() -> np.dtype[Any]:
    """Where the orchestrator's signal socket listens, as bound (port 0 resolved)."""
    return _record(
        [
            ("pid", "<i8"),
            ("t_ns", "<i8"),  # when it was published (0: never)
            ("tcp", f"S{ENDPOINT_BYTES}"),  # "host:port", ASCII, NUL-padded
            ("unix", f"S{ENDPOINT_BYTES}"),  # Unix socket path, empty if none
        ],
        align=8,
    )


def metrics_endpoint_dtype() -> np.dtype[Any]:
    """Where the oracle serves /metrics and /healthz, as bound."""
    return _record(
        [
            ("pid", "<i8"),
            ("t_ns", "<i8"),
            ("http", f"S{ENDPOINT_BYTES}"),  # "host:port"
        ],
        align=8,
    )


def seqlock_dtype(record: np.dtype[Any]) -> np.dtype[Any]:
    """A double-buffered seqlock block around ``record`` (see :mod:`engs.shared.seqlock`).

    ``seq`` is even when slot 0 holds the newest record, odd when slot 1 does; each
    slot carries a CRC-32 of its record bytes so a torn copy is detected regardless
    of memory ordering.
    """
    slot = _record([("crc", "<u4"), ("_pad", "<u4"), ("rec", record)])
    return _record(
        [
            ("seq", "<u8"),
            ("writer_pid", "<i8"),
            ("slot_size", "<u8"),
            ("slots", slot, (2,)),
        ]
    )


def build_layout(max_areas: int) -> np.dtype[Any]:
    """The dtype of the whole region for ``max_areas`` per-area rows."""
    if not 1 <= max_areas <= 1024:
        raise ValueError(f"max_areas must be in 1..1024, got {max_areas}")
    state = state_dtype(max_areas)
    header = _record(
        [
            ("magic", "<u8"),
            ("layout_version", "<u4"),
            ("max_areas", "<u4"),
            ("total_size", "<u8"),
            ("layout_hash", "<u8"),
            ("creator_pid", "<i8"),
            ("created_wall_ns", "<i8"),
            ("created_ns", "<i8"),
            ("ready", "<u4"),  # READY_MARK once the creator has initialised every block
            ("_reserved", "<u4"),
        ]
    )
    interrupt = _record(
        [
            # One 64-bit word; lane i is bits 16i..16i+15 (little-endian u2 lanes).
            ("word", "<u8"),
            ("raised_t_ns", "<i8", (N_LANES, N_CAUSE_BITS)),
            ("emergency", seqlock_dtype(state)),
        ]
    )
    heartbeat = _record(
        [
            ("pid", "<i8"),
            ("started_ns", "<i8"),
            ("started_wall_ns", "<i8"),
            ("last_beat_ns", "<i8"),
            ("beats", "<u8"),
            ("state", "<u4"),  # HeartbeatState
            ("flags", "<u4"),  # RegionFlags: how this process pinned its mapping
        ]
    )
    meta = _record(
        [
            ("n_areas", "<u4"),
            ("_pad", "<u4"),
            ("area_names", f"S{AREA_NAME_BYTES}", (max_areas,)),  # ASCII, NUL-padded
        ]
    )
    counters_line = _record([("count", "<u8", (N_REQUESTS,))])
    requests = _record([("requested", counters_line), ("applied", counters_line)])
    endpoints = _record(
        [
            ("signals", seqlock_dtype(signals_endpoint_dtype())),
            ("metrics", seqlock_dtype(metrics_endpoint_dtype())),
        ]
    )
    stats = _record(
        [
            ("counters", "<u8", (N_COUNTERS,)),
            ("hist_counts", "<u8", (N_HISTOGRAMS, N_BUCKETS)),
            ("hist_sum_ns", "<u8", (N_HISTOGRAMS,)),
        ]
    )
    return _record(
        [
            ("header", header),
            ("meta", meta),
            ("control", seqlock_dtype(state)),
            ("interrupt", interrupt),
            ("telemetry", seqlock_dtype(telemetry_dtype(max_areas))),
            ("requests", requests),
            ("heartbeats", heartbeat, (N_PROCESSES,)),
            ("stats", stats, (N_PROCESSES,)),
            ("deadlines", seqlock_dtype(deadline_dtype())),
            ("endpoints", endpoints),
        ],
        align=4096,  # whole pages: the region is mmapped and mlocked as pages
    )


READY_MARK = 0x52454144  # "READ"

#: Every seqlock block, by dotted path: the creator gives each a valid zero record.
SEQLOCK_BLOCKS: tuple[str, ...] = (
    "control", "telemetry", "interrupt.emergency", "deadlines", "endpoints.signals",
    "endpoints.metrics",
)  # fmt: skip


def layout_hash(region: np.dtype[Any]) -> int:
    """A 64-bit fingerprint of everything two processes must agree on."""
    from engs.shared.stats_schema import COUNTERS, HISTOGRAMS  # noqa: PLC0415 - imports us

    parts = [
        repr(region.descr),
        repr(HIST_BOUNDS_NS),
        repr({p.name: [(c.name, c.labels) for c in cs] for p, cs in COUNTERS.items()}),
        repr({p.name: [h.name for h in hs] for p, hs in HISTOGRAMS.items()}),
        repr([(c.name, int(c)) for c in Cause]),
        repr(NEUROMODULATORS),
        repr(REQUEST_KINDS),
    ]
    blob = "\n".join(parts).encode()
    return (zlib.crc32(blob) << 32) | zlib.adler32(blob)


def field_offset(dtype: np.dtype[Any], path: str) -> int:
    """Byte offset of a dotted field path (``"control.slots"``) inside ``dtype``."""
    off = 0
    dt = dtype
    for part in path.split("."):
        if dt.fields is None or part not in dt.fields:
            raise KeyError(f"no field {part!r} in {path!r}")
        sub, o = dt.fields[part][:2]
        off += o
        dt = sub
    return off


def describe(max_areas: int) -> str:
    """A Markdown table of the region's blocks (docs/shm-layout.md embeds it)."""
    dt = build_layout(max_areas)
    rows = [
        f"Region for max_areas={max_areas}: {dt.itemsize} bytes, layout version {LAYOUT_VERSION}.",
        "",
        "| block | offset | bytes | contents |",
        "| --- | ---: | ---: | --- |",
    ]
    contents = {
        "header": "magic, layout version, max_areas, size, layout hash, creator, ready mark",
        "meta": "n_areas and area names",
        "control": "seqlock: seq, writer pid, 2 slots of (CRC-32, NeurochemicalState "
        f"{state_dtype(max_areas).itemsize} B)",
        "interrupt": "cause word (4 lanes x 16 bits), raise times [lane, cause], "
        "emergency NeurochemicalState seqlock",
        "telemetry": "seqlock: seq, writer pid, 2 slots of (CRC-32, PhysicsTelemetry "
        f"{telemetry_dtype(max_areas).itemsize} B)",
        "requests": "oracle → orchestrator request counters: requested (oracle), "
        "applied (orchestrator), one cache line each",
        "heartbeats": f"{N_PROCESSES} x (pid, start, last beat, beats, state, pin flags)",
        "stats": f"{N_PROCESSES} x ({N_COUNTERS} counters, {N_HISTOGRAMS} histograms x "
        f"{N_BUCKETS} buckets, sums)",
        "deadlines": "seqlock: seq, writer pid, 2 slots of (CRC-32, DeadlineReport "
        f"{deadline_dtype().itemsize} B): the physics' tick rate, misses, p99s (1 Hz)",
        "endpoints": "two seqlocks: the signal socket as bound (TCP, Unix path; "
        "orchestrator) and the metrics address (oracle)",
    }
    for name in dt.names or ():
        sub, off = dt.fields[name][:2]  # type: ignore[index]
        rows.append(f"| {name} | {off} | {sub.itemsize} | {contents[name]} |")
    return "\n".join(rows)
