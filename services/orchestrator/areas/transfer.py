"""Seed 002's transfer: one cycle of neuromodulator flow along every edge x NT at once.

All arrays are float64; shapes ``(E, 7)`` per edge x NT and ``(K, 7)`` per site x NT
(sites: nuclei, then areas). Levels are in one unit of amount: an area's level is
normalised (1 = the hard-ceiling scale); a nucleus's releasable store is counted in the
same unit and holds up to ``scale`` of it (⚑ 4), so mass is conserved across sites.
One cycle (seed 002 §2, with the departures marked ⚑)::

    avail  = share · μ_src                  share = f / (outdeg · Γ)          ⚑ 1
    raw    = g · s · r̂_src · avail          base gain, modulator, release net (seed 000)
    sent   = min(raw, cap_edge)             edge cap
    out_i  = Σ_{e from i} sent_e            deducted from the source
    influx = Σ_{e into j} sent_e
    cap    = ρ̂ · cap_recv                   receptor capacity (density net, seed 000)
    bound  = min(influx, cap),  spilled = influx - bound
    arrived = k_bind · bound,   degraded = (1 - k_bind) · bound                   ⚑ 2
    kept   = μ - out,  decayed = d · kept                                          ⚑ 3
    pre    = kept - decayed + arrived + synth·driver
    μ⁺     = clip(clip(pre, μ - Δmax, μ + Δmax), 0, ceiling)   clipped = pre - μ⁺

⚑ 1 The seed clamps each edge's availability to the whole source (``avail =
clamp(μ_i, 0, cap_out)``), so k edges at full gain could together take k times what the
source holds and drive it negative. Here each edge gets its share of the fraction
``f = 1 - e^{-ν dt}`` of the pool the source can release per cycle, divided by the most
an edge's gains can multiply (Γ = gain_max · s_max · release_max): whatever the learned
parameters, a source releases at most ``f·μ`` per cycle and never goes negative.

⚑ 2 The seed adds ``k_bind · bound`` to the receiver and says nothing of the rest of
the bound amount; it is counted as ``degraded`` (taken up and broken down at the
receptor), so the books close: sent = arrived + spilled + degraded, exactly.

⚑ 3 Decay (seed 002 §10) acts on what stayed after release, so ``kept - decayed >= 0``
for any rates and the clip at 0 never has to destroy mass.

⚑ 4 The seed's areas all hold normalised levels. With mass conserved, a nucleus at 0.5
could not resupply several areas whose dopamine clears in 0.1 s: their demand is ~100x
its pool per second. A nucleus is a small, dense store feeding a large volume; here its
store is sized by calibration (``scale``, tens of area units) and it synthesises towards
``driver x scale`` at its turnover rate; ceilings and max Δ (per *area*, seed 002 §8)
apply to the areas, the store's own ceiling is its size.

Mass ledger per NT (tested): Σ μ⁺ - Σ μ = Σ synth - Σ decayed - Σ spilled - Σ degraded
- Σ clipped. Hard ceilings and max Δ are applied last, so no learned parameter can
exceed them (tested with adversarial inputs).

:func:`backward` is the exact adjoint of :func:`forward` for the inputs that learning
changes (s, g, r̂, ρ̂), with the levels μ, the drivers and the capacities held
("detach μ dynamics", seed 002 §5); checked against finite differences in the tests.
:func:`steady_state` solves the same cycle's fixed point with the caps ignored, for
calibration and for consolidation's regression over replayed states.

Writer: :class:`engs.services.orchestrator.areas.model.AreaNeurochemistry` (one thread).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engs.services.orchestrator.areas.projections import Graph
from engs.shared.layout import N_NT

F64Array = np.ndarray[Any, np.dtype[np.float64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]
I64Array = np.ndarray[Any, np.dtype[np.int64]]


@dataclass
class Kinetics:
    """Constants of the transfer for one graph and cycle length (``cap_recv`` and
    ``cap_edge`` are set by calibration and checkpointed with the learned state)."""

    n_sites: int
    n_edges: int
    n_nuclei: int
    idx_src: I64Array
    """(E*7,) flat index ``src·7 + n`` of each edge x NT's source entry."""
    idx_tgt: I64Array
    mask: F64Array
    """(E, 7) 1 where the edge carries the NT."""
    share: F64Array
    """(E, 7) f / (outdeg · Γ): fraction of the source level one unit of gain releases."""
    retain: F64Array
    """(K, 7) 1 - d: fraction of what stayed that survives decay (turnover in nuclei)."""
    synth: F64Array
    """(K, 7) synthesis per unit of driver: d where the site synthesises the NT."""
    k_bind: float
    cap_recv: F64Array
    """(K, 7) receptor capacity per cycle at ρ̂ = 1 (0 where nothing arrives)."""
    cap_edge: F64Array
    """(E, 7) per-edge cap per cycle."""
    scale: F64Array
    """(K, 7) store size: 1 in the areas; a nucleus's releasable pool holds up to
    ``scale`` area-level units (calibrated, :meth:`set_pool_scale`)."""
    max_delta: F64Array
    """(K, 7) max |Δμ| per cycle (areas; inf in the nuclei)."""
    ceiling: F64Array
    """(K, 7) hard ceiling (areas: config; nuclei: their pool size)."""
    receives: BoolArray
    """(K, 7) the site receives the NT from some edge."""
    emits: BoolArray
    """(K, 7) the site releases the NT along some edge."""
    gamma: float
    turnover: F64Array
    """(K, 7) per-cycle turnover d where the site synthesises the NT, else 0."""

    def set_pool_scale(self, scale: F64Array) -> None:
        """Size the nuclei's stores (K, 7) (1 where nothing is synthesised): synthesis
        and the pool ceiling scale with it, so a store still fills to ``driver x scale``."""
        np.copyto(self.scale, scale)
        np.multiply(self.turnover, scale, out=self.synth)
        nuclei = self.turnover > 0
        self.ceiling[nuclei] = scale[nuclei]


def make_kinetics(
    graph: Graph,
    dt: float,
    *,
    clearance_per_s: list[float],
    turnover_per_s: list[float],
    release_per_s: list[float],
    max_rate_per_s: list[float],
    ceiling: list[float],
    bind_fraction: float,
    gamma: float,
) -> Kinetics:
    """Per-cycle constants from per-second rates (exact exponentials, so any cycle
    length keeps every fraction in [0, 1))."""
    k, e = graph.n_sites, graph.n_edges
    frac = [1.0 - math.exp(-r * dt) for r in release_per_s]
    f = np.array(frac)
    outdeg = np.zeros((k, N_NT))
    np.add.at(outdeg, graph.src, graph.mask)
    deg = outdeg[graph.src]
    share = np.where(graph.mask > 0, f / (np.maximum(deg, 1.0) * gamma), 0.0)
    d_clear = np.array([1.0 - math.exp(-r * dt) for r in clearance_per_s])
    d_turn = np.array([1.0 - math.exp(-r * dt) for r in turnover_per_s])
    d = np.where(graph.profile > 0, d_turn, d_clear)
    received = np.zeros((k, N_NT))
    np.add.at(received, graph.tgt, graph.mask)
    nt = np.arange(N_NT)
    nuclei = graph.profile > 0
    max_delta = np.where(nuclei, np.inf, np.array([r * dt for r in max_rate_per_s]))
    ceil = np.where(nuclei, 1.0, np.array(ceiling, dtype=np.float64))
    return Kinetics(
        n_sites=k,
        n_edges=e,
        n_nuclei=graph.n_nuclei,
        idx_src=(graph.src[:, None] * N_NT + nt).ravel(),
        idx_tgt=(graph.tgt[:, None] * N_NT + nt).ravel(),
        mask=graph.mask.copy(),
        share=share,
        retain=1.0 - d,
        synth=d * graph.profile,
        k_bind=bind_fraction,
        cap_recv=np.zeros((k, N_NT)),
        cap_edge=np.full((e, N_NT), np.inf),
        scale=np.ones((k, N_NT)),
        max_delta=max_delta,
        ceiling=ceil,
        receives=received > 0,
        emits=outdeg > 0,
        gamma=gamma,
        turnover=d * graph.profile,
    )


@dataclass
class Flows:
    """One cycle's transfer: inputs gathered per edge, every flow, and the masks the
    backward pass needs. Preallocated; :func:`forward` refills it."""

    n_sites: int
    n_edges: int
    mu: F64Array = field(init=False)
    """(K, 7) levels before the cycle (a copy)."""
    mu_src: F64Array = field(init=False)
    avail: F64Array = field(init=False)
    rhat_src: F64Array = field(init=False)
    raw: F64Array = field(init=False)
    sent: F64Array = field(init=False)
    edge_ok: BoolArray = field(init=False)
    """raw < cap_edge: the edge cap did not act."""
    out: F64Array = field(init=False)
    influx: F64Array = field(init=False)
    cap: F64Array = field(init=False)
    bound: F64Array = field(init=False)
    spilled: F64Array = field(init=False)
    unsat: BoolArray = field(init=False)
    """influx < cap: binding not saturated."""
    arrived: F64Array = field(init=False)
    degraded: F64Array = field(init=False)
    decayed: F64Array = field(init=False)
    synthesised: F64Array = field(init=False)
    pre: F64Array = field(init=False)
    post: F64Array = field(init=False)
    clipped: F64Array = field(init=False)
    ok: BoolArray = field(init=False)
    """pre == post: no safety clamp acted (the gradient passes)."""

    def __post_init__(self) -> None:
        ek, kk = (self.n_edges, N_NT), (self.n_sites, N_NT)
        for name in ("mu_src", "avail", "rhat_src", "raw", "sent"):
            setattr(self, name, np.zeros(ek))
        self.edge_ok = np.ones(ek, dtype=bool)
        for name in (
            "mu", "out", "influx", "cap", "bound", "spilled", "arrived", "degraded",
            "decayed", "synthesised", "pre", "post", "clipped",
        ):  # fmt: skip
            setattr(self, name, np.zeros(kk))
        self.unsat = np.ones(kk, dtype=bool)
        self.ok = np.ones(kk, dtype=bool)


def forward(
    kin: Kinetics,
    mu: F64Array,
    s: F64Array,
    g: F64Array,
    rhat: F64Array,
    rho: F64Array,
    driver: F64Array,
    fl: Flows,
) -> None:
    """One cycle from levels ``mu`` (K, 7); fills ``fl`` (``fl.post`` is μ⁺).

    ``s``, ``g`` (E, 7): modulator scale and base gain; ``rhat`` (K, 7): release-net
    output of each site (used at sources); ``rho`` (K, 7): density-net output (used at
    receivers); ``driver`` (7,): each NT's nucleus firing in [0, 1].
    """
    k = kin.n_sites
    np.copyto(fl.mu, mu)
    flat = mu.reshape(-1)
    np.take(flat, kin.idx_src, out=fl.mu_src.reshape(-1))
    np.multiply(kin.share, fl.mu_src, out=fl.avail)
    np.take(rhat.reshape(-1), kin.idx_src, out=fl.rhat_src.reshape(-1))
    np.multiply(g, s, out=fl.raw)
    fl.raw *= fl.rhat_src
    fl.raw *= fl.avail
    np.less(fl.raw, kin.cap_edge, out=fl.edge_ok)
    np.minimum(fl.raw, kin.cap_edge, out=fl.sent)
    sent = fl.sent.reshape(-1)
    fl.out[...] = np.bincount(kin.idx_src, weights=sent, minlength=k * N_NT).reshape(k, N_NT)
    fl.influx[...] = np.bincount(kin.idx_tgt, weights=sent, minlength=k * N_NT).reshape(k, N_NT)
    np.multiply(rho, kin.cap_recv, out=fl.cap)
    np.less(fl.influx, fl.cap, out=fl.unsat)
    np.minimum(fl.influx, fl.cap, out=fl.bound)
    np.subtract(fl.influx, fl.bound, out=fl.spilled)
    np.multiply(fl.bound, kin.k_bind, out=fl.arrived)
    np.subtract(fl.bound, fl.arrived, out=fl.degraded)
    np.subtract(mu, fl.out, out=fl.pre)  # kept
    np.multiply(fl.pre, 1.0 - kin.retain, out=fl.decayed)
    fl.pre -= fl.decayed
    fl.pre += fl.arrived
    np.multiply(kin.synth, driver, out=fl.synthesised)
    fl.pre += fl.synthesised
    # clamps (np.maximum/np.minimum: np.clip's wrapper costs more than the arithmetic)
    np.maximum(fl.pre, mu - kin.max_delta, out=fl.post)
    np.minimum(fl.post, mu + kin.max_delta, out=fl.post)
    np.maximum(fl.post, 0.0, out=fl.post)
    np.minimum(fl.post, kin.ceiling, out=fl.post)
    np.subtract(fl.pre, fl.post, out=fl.clipped)
    np.equal(fl.clipped, 0.0, out=fl.ok)


def backward(
    kin: Kinetics,
    fl: Flows,
    s: F64Array,
    g: F64Array,
    *,
    d_post: F64Array | None = None,
    d_bound: F64Array | None = None,
    d_spilled: F64Array | None = None,
    d_influx: F64Array | None = None,
    d_cap: F64Array | None = None,
    d_sent: F64Array | None = None,
) -> tuple[F64Array, F64Array, F64Array, F64Array]:
    """Adjoint of :func:`forward`: given dL/d(post, bound, spilled, influx, cap, sent)
    (None: zero), return dL/d(s, g) (E, 7) and dL/d(r̂, ρ̂) (K, 7)."""
    k = kin.n_sites
    zk = np.zeros((k, N_NT))
    g_pre = (d_post if d_post is not None else zk) * fl.ok
    g_out = -kin.retain * g_pre
    g_bound = kin.k_bind * g_pre
    if d_bound is not None:
        g_bound = g_bound + d_bound
    if d_spilled is not None:
        g_bound = g_bound - d_spilled
    g_influx = np.where(fl.unsat, g_bound, 0.0)
    if d_spilled is not None:
        g_influx += d_spilled
    if d_influx is not None:
        g_influx += d_influx
    g_cap = np.where(fl.unsat, 0.0, g_bound)
    if d_cap is not None:
        g_cap += d_cap
    g_sent = g_influx.reshape(-1)[kin.idx_tgt] + g_out.reshape(-1)[kin.idx_src]
    g_raw = g_sent.reshape(kin.n_edges, N_NT)
    if d_sent is not None:
        g_raw = g_raw + d_sent
    g_raw = g_raw * fl.edge_ok
    common = g_raw * fl.rhat_src * fl.avail
    g_s = common * g
    g_g = common * s
    g_rhat = np.asarray(
        np.bincount(
            kin.idx_src, weights=(g_raw * g * s * fl.avail).reshape(-1), minlength=k * N_NT
        ),
        dtype=np.float64,
    ).reshape(k, N_NT)
    g_rho = g_cap * kin.cap_recv
    return g_s, g_g, g_rhat, g_rho


@dataclass(frozen=True)
class SteadyState:
    """Fixed point of one cycle with the caps ignored, per batch row."""

    mu: F64Array
    """(B, K, 7) levels."""
    sent: F64Array
    """(B, E, 7) per-cycle transfers."""
    influx: F64Array
    """(B, K, 7)."""


def steady_state(
    kin: Kinetics,
    propensity: F64Array,
    driver: F64Array,
    *,
    iterations: int = 50,
    tol: float = 1e-13,
) -> SteadyState:
    """Levels at which one cycle changes nothing, for each row of a batch.

    ``propensity`` (B, E, 7) or (E, 7): g · s · r̂_src of each edge; ``driver`` (B, 7):
    the nuclei's firing. Receptor capacities, edge caps and the safety clamps are
    ignored (the linear regime calibration and consolidation reason about). Jacobi
    iterations: exact after two when only nuclei project; converges for any graph
    because k_bind < 1 and every retained fraction is < 1.
    """
    b = driver.shape[0]
    k, e = kin.n_sites, kin.n_edges
    q = kin.share * np.broadcast_to(propensity, (b, e, N_NT))  # fraction released per cycle
    offs = (np.arange(b) * k * N_NT)[:, None]
    src_b = (offs + kin.idx_src[None, :]).ravel()
    tgt_b = (offs + kin.idx_tgt[None, :]).ravel()
    total = np.bincount(src_b, weights=q.reshape(-1), minlength=b * k * N_NT)
    big_q = total.reshape(b, k, N_NT)
    denom = 1.0 - kin.retain * (1.0 - big_q)
    base = kin.synth * driver[:, None, :]
    mu = base / denom
    sent = np.zeros((b, e, N_NT))
    influx = np.zeros((b, k, N_NT))
    for _ in range(iterations):
        mu_src = mu.reshape(b, -1)[:, kin.idx_src].reshape(b, e, N_NT)
        sent = q * mu_src
        influx = np.bincount(tgt_b, weights=sent.reshape(-1), minlength=b * k * N_NT).reshape(
            b, k, N_NT
        )
        new = (base + kin.k_bind * influx) / denom
        change = float(np.max(np.abs(new - mu))) if mu.size else 0.0
        mu = new
        if change <= tol:
            break
    return SteadyState(mu=mu, sent=sent, influx=influx)
