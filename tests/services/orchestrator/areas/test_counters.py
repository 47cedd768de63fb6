"""The area model's named counters: what each counts, and the checkpoint layout they keep
(one int64 array in LAYOUT order, as before they had names)."""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from engs.services.orchestrator.areas.counters import LAYOUT, AreaCounters
from tests.services.orchestrator.areas.helpers import make_model, rest_step


def test_the_counters_count_awake_and_napping_cycles_and_round_trip_in_the_old_layout() -> None:
    m = make_model()
    for i in range(5):
        rest_step(m, i)
    for i in range(5, 8):
        rest_step(m, i, napping=True)
    c = m.counters
    assert (c.learn_cycles, c.nap_cycles, c.napping) == (5, 3, True)
    st = m.state_dict()
    blob = st.arrays["counters"]
    assert (blob.dtype, blob.shape) == ("<i8", [4])
    assert np.frombuffer(blob.data, "<i8").tolist() == [5, 3, 1, c.gains_cut]
    twin = make_model()
    twin.load_state_dict(st)
    assert twin.counters == c and twin.counters is not c
    rest_step(m, 8)  # waking ends the nap: its count restarts
    assert (c.learn_cycles, c.nap_cycles, c.napping) == (6, 0, False)


def test_the_layout_names_every_counter_once() -> None:
    counters = AreaCounters(learn_cycles=7, nap_cycles=2, napping=True, gains_cut=3)
    # the checkpoint format, pinned: a reordering would misread every saved checkpoint
    assert LAYOUT == ("learn_cycles", "nap_cycles", "napping", "gains_cut")
    assert sorted(LAYOUT) == sorted(f.name for f in fields(AreaCounters))
    assert counters.to_array().tolist() == [7, 2, 1, 3]
    back = AreaCounters()
    back.load_array(counters.to_array())
    assert back == counters and isinstance(back.napping, bool)
