"""Dream-weave replay: P(i) ∝ β·priority + (1-β)·diversity, by hand (seed 003 §8.1)."""

from __future__ import annotations

import numpy as np
import pytest

from engs.services.orchestrator.dream import DreamBuffer


def _buffer() -> DreamBuffer:
    buf = DreamBuffer(capacity=3, n_features=2, n_areas=1, priority_floor=0.0)
    # φ: (0,0), (0,0), (3,0): the third is the odd one out; δ: 1, 3, 0.
    for i, (phi, td) in enumerate((((0.0, 0.0), 1.0), ((0.0, 0.0), -3.0), ((3.0, 0.0), 0.0))):
        buf.add(i, np.array(phi), 0.0, td, (0.5, 0.5, 0.3, 1.0), None, (0.0,) * 5)
    return buf


def test_mixture_by_hand() -> None:
    buf = _buffer()
    # Priority |δ|/Σ = (1/4, 3/4, 0). Mean φ = (1, 0); distances (1, 1, 2)/4.
    np.testing.assert_allclose(buf.probabilities(1.0), [0.25, 0.75, 0.0])
    np.testing.assert_allclose(buf.probabilities(0.0), [0.25, 0.25, 0.5])
    np.testing.assert_allclose(buf.probabilities(0.5), [0.25, 0.5, 0.25])


def test_ring_keeps_the_newest() -> None:
    buf = _buffer()
    buf.add(9, np.array([1.0, 1.0]), 2.0, 0.5, (0.1, 0.2, 0.3, 0.4), np.array([7.0]), (1,) * 5)
    assert len(buf) == 3
    batch = buf.sample(200, 0.0, 1.0, np.random.default_rng(0))
    assert set(batch.cycle.tolist()) == {1, 2, 9}  # cycle 0 was overwritten


def test_sampling_is_seeded_and_follows_p() -> None:
    buf = _buffer()
    a = buf.sample(20_000, 0.5, 0.7, np.random.default_rng(3))
    b = buf.sample(20_000, 0.5, 0.7, np.random.default_rng(3))
    assert np.array_equal(a.slots, b.slots)
    freq = np.bincount(a.slots, minlength=3) / 20_000
    np.testing.assert_allclose(freq, [0.25, 0.5, 0.25], atol=0.015)
    assert a.noise_temperature == 0.7 and a.beta == 0.5
    np.testing.assert_array_equal(a.probability, np.array([0.25, 0.5, 0.25])[a.slots])


def test_empty_buffer_refuses_to_dream() -> None:
    buf = DreamBuffer(capacity=4, n_features=2, n_areas=1, priority_floor=1e-3)
    with pytest.raises(ValueError, match="the replay buffer is empty"):
        buf.sample(1, 0.5, 1.0, np.random.default_rng(0))
