"""The Homeostasis Module (seed 002 §4-5, §8): learning returns perturbed areas to their
bands (and the frozen module does not), saturation auto-reduces feeding gains, and
sleep consolidation prunes, refits and re-centres from dream-weave replay."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from engs.services.orchestrator.dream import DreamBatch
from engs.services.orchestrator.events import AreaConsolidated, NapEnded
from engs.services.orchestrator.inputs import CycleInputs
from tests.services.orchestrator.areas.helpers import make_model, rest_step
from tests.services.orchestrator.helpers import FakeTelemetry, make_engs

DA, SHT = 0, 1
#: Chronic hyperdopaminergia: the dopamine nuclei fire at 0.9 instead of 0.5.
HIGH_D = (0.9, 0.5, 0.3, 1.0)


def _in_band(m: Any, nt: int) -> bool:
    mu = m.mu[m.n0 :, nt]
    return bool(np.all((mu >= m.lo[:, nt]) & (mu <= m.hi[:, nt])))


@pytest.mark.parametrize("learning", [True, False])
def test_perturbed_areas_return_to_their_bands_only_with_learning(learning: bool) -> None:
    """D held at 0.9 drives every area's dopamine above its band (x 1.8). With the
    module learning they are back inside within 1 000 cycles (10 s) and stay; frozen
    (receptors learning as usual in both) they are still outside after 2 000."""
    m = make_model({"orchestrator.areas.homeostasis.learning": learning})
    for i in range(100):
        rest_step(m, i)
    assert _in_band(m, DA)
    inside, above = [], []
    for i in range(2_000):
        rest_step(m, i, levels=HIGH_D)
        inside.append(_in_band(m, DA))
        above.append(bool(np.all(m.mu[m.n0 :, DA] > m.hi[:, DA])))
    assert all(above[30:60])
    assert not any(inside[30:60])  # within 0.3 s every area is above its band
    after = inside[60:]
    if learning:
        first = 60 + after.index(True)
        assert first < 1_000
        assert all(inside[first + 100 :]), "it left the band again"
    else:
        assert not any(after)
        assert np.all(m.mu[m.n0 :, DA] > m.hi[:, DA])


def _edge(m: Any, name: str) -> int:
    return m.graph.edge_names.index(name)


def test_persistent_saturation_reduces_the_gains_that_feed_it() -> None:
    """With gradient steps too small to help, a level above its band + margin for more
    than T cycles cuts the base gains of its feeding edges by the configured factor."""
    m = make_model(
        {
            "orchestrator.areas.homeostasis.lr": 1e-12,
            "orchestrator.areas.homeostasis.gain_lr": 1e-12,
            "orchestrator.areas.homeostasis.saturation_cycles": 100,
        }
    )
    vta_limbic, snc_motor = _edge(m, "vta->limbic"), _edge(m, "snc->motor")
    lc_limbic = _edge(m, "lc->limbic")
    g0 = m.mods.g.copy()
    reports = [rest_step(m, i, levels=(1.0, 0.5, 0.3, 1.0)) for i in range(160)]
    cut_at = [i for i, r in enumerate(reports) if r.gains_reduced]
    assert cut_at, "no reduction"
    first = cut_at[0]
    assert first >= 100  # only after T consecutive saturated cycles
    # the dopamine edges into saturated areas were cut by 0.8; other NTs untouched
    assert m.mods.g[vta_limbic, DA] == pytest.approx(0.8 * g0[vta_limbic, DA], rel=1e-6)
    assert m.mods.g[snc_motor, DA] == pytest.approx(0.8 * g0[snc_motor, DA], rel=1e-6)
    assert m.mods.g[lc_limbic, 2] == pytest.approx(g0[lc_limbic, 2], rel=1e-6)
    assert m.counters.gains_cut == sum(r.gains_reduced for r in reports)
    # a frozen module does not touch the gains
    frozen = make_model(
        {
            "orchestrator.areas.homeostasis.learning": False,
            "orchestrator.areas.homeostasis.saturation_cycles": 100,
        }
    )
    g1 = frozen.mods.g.copy()
    assert not any(rest_step(frozen, i, levels=(1.0, 0.5, 0.3, 1.0)).gains_reduced
                   for i in range(160))  # fmt: skip
    assert np.array_equal(frozen.mods.g, g1)


def _batch(n: int, d: float = 0.5) -> DreamBatch:
    """n remembered experiences at D = d (the rest otherwise), no dream noise."""
    levels = np.tile([d, 0.5, 0.3, 1.0], (n, 1))
    return DreamBatch(
        slots=np.arange(n),
        probability=np.full(n, 1.0 / n),
        cycle=np.arange(1, n + 1),
        features=np.zeros((n, 3)),
        reward=np.zeros(n),
        td_error=np.zeros(n),
        levels=levels,
        activity=np.ones((n, 4), dtype=np.float32),
        dmn=np.tile([0.0, 0.0, 0.0, 1.0, 0.0], (n, 1)),
        beta=0.3,
        noise_temperature=0.0,
    )


def _nap(m: Any, cycles: int, d: float = 0.5) -> Any:
    for i in range(cycles):
        rest_step(m, i, napping=True, dream=lambda n: _batch(n, d))
    return rest_step(m, cycles, napping=False)


def test_consolidation_prunes_a_useless_edge_and_keeps_a_useful_one() -> None:
    """The median raphe's 5-HT edge into the limbic area is silenced (s ≈ 0): after a nap
    it is pruned; the dorsal raphe's edge into the same area, which carries the supply,
    is kept, and the area's serotonin stays in its band."""
    m = make_model({"orchestrator.areas.consolidation.stats_tau_s": 1.0})
    useless, useful = _edge(m, "mrn->limbic"), _edge(m, "drn->limbic")
    m.mods.b[useless, SHT] = -9.0
    for i in range(600):
        rest_step(m, i)
    assert m.nap.s_mean[useless, SHT] < 0.01 and m.nap.s_mean[useful, SHT] > 0.2
    report = _nap(m, 300)
    res = report.consolidation
    assert res is not None and res.samples == 3 * 64
    assert res.pruned == 1
    assert m.kin.mask[useless, SHT] == 0.0 and m.kin.mask[useful, SHT] == 1.0
    for i in range(1_000):
        rest_step(m, i)
    assert _in_band(m, SHT)
    assert m.mods.s[useless, SHT] == 0.0  # pruned for good


def test_consolidation_refits_base_gains_to_the_replayed_states() -> None:
    """Replayed states with D = 0.8 put the dopamine steady states above their band
    centres: the regression factor κ < 1 lowers the gains, the modulators' long-term
    adaptation moves into g and s returns to s_max / 2 at the mean features."""
    m = make_model({"orchestrator.areas.consolidation.stats_tau_s": 1.0})
    for i in range(300):
        rest_step(m, i)
    for i in range(200):
        rest_step(m, i, napping=True, dream=lambda n: _batch(n, 0.8))
    st = m.nap.dream
    kappa = st.mu_c[:, DA] / st.mu2[:, DA]
    assert np.all(kappa < 0.75)  # 0.5 / 0.8 at the centres, less where sparse
    vta_limbic = _edge(m, "vta->limbic")
    tgt = m.graph.tgt[vta_limbic] - m.n0
    g_old = m.mods.g[vta_limbic, DA]
    s_mean = m.nap.s_mean[vta_limbic, DA]
    res = rest_step(m, 200, napping=False).consolidation
    assert res is not None and res.refit == int((m.kin.mask > 0).sum())
    expected = g_old * s_mean * kappa[tgt] ** 0.5  # refit_rate 0.5, product kept
    m.forward_cycle(levels=(0.5, 0.5, 0.3, 1.0), cortisol=0.0, boredom=0.1, napping=False,
                    dmn=(0.0, 0.0, 0.0, 1.0, 0.0), node=None)  # fmt: skip
    s_new = m.mods.s[vta_limbic, DA]
    assert m.mods.g[vta_limbic, DA] < g_old
    assert s_new == pytest.approx(0.5, abs=0.05)
    assert m.mods.g[vta_limbic, DA] * s_new == pytest.approx(expected, rel=0.05)


def test_chronically_saturated_bands_are_recentred_within_limits() -> None:
    m = make_model()
    limbic, sensory = 3, 0
    m.nap.frac_above[limbic, DA] = 0.9  # chronically above its band
    m.nap.level_mean[limbic, DA] = 0.9
    m.nap.frac_below[sensory, SHT] = 0.9  # chronically below
    m.nap.level_mean[sensory, SHT] = 0.46
    before = (m.lo.copy(), m.hi.copy())
    res = m.consolidate()
    assert res.bands_moved == 2 and res.pruned == 0  # no dreams: nothing else changes
    # centre 0.6 moves half way to 0.9, capped at rest + band_drift_max = 0.75
    assert m.lo[limbic, DA] == pytest.approx(0.65) and m.hi[limbic, DA] == pytest.approx(0.85)
    assert (m.lo[sensory, SHT] + m.hi[sensory, SHT]) / 2 == pytest.approx(0.48)
    moved = np.zeros_like(m.lo, dtype=bool)
    moved[limbic, DA] = moved[sensory, SHT] = True
    assert np.array_equal(m.lo[~moved], before[0][~moved])
    assert np.array_equal(m.hi[~moved], before[1][~moved])


def test_a_real_nap_consolidates_from_the_engs_replay_buffer() -> None:
    """End to end through the ENGS: awake experiences fill the dream-weave buffer, ATP
    runs out, the nap dreams from it, and waking consolidates (the silenced edge is
    pruned, an AreaConsolidated event is published)."""
    engs = make_engs(
        {
            "orchestrator.metabolism.capacity_nmu": 20_000.0,
            "orchestrator.nap.min_duration_s": 1.0,
            "orchestrator.nap.recharge_per_s": 0.5,
            "orchestrator.areas.consolidation.every_cycles": 20,
            "orchestrator.areas.consolidation.stats_tau_s": 1.0,
        }
    )
    chem = engs.area_chem
    assert chem is not None
    useless = chem.graph.edge_names.index("mrn->limbic")
    chem.mods.b[useless, SHT] = -9.0
    tel = FakeTelemetry(engs)
    events: list[Any] = []
    for _ in range(4_000):
        events += engs.step(CycleInputs(reward=0.01), tel.next()).events
        if any(isinstance(e, NapEnded) for e in events):
            break
    done = [e for e in events if isinstance(e, AreaConsolidated)]
    assert len(done) == 1 and any(isinstance(e, NapEnded) for e in events)
    assert done[0].samples > 0 and done[0].pruned == 1
    assert chem.kin.mask[useless, SHT] == 0.0
