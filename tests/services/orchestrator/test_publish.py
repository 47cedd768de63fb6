"""The publish path: the dynamics' fields, the loop's fields, and the checksum that
tells them apart."""

from __future__ import annotations

import numpy as np

from engs.services.orchestrator import publish
from engs.services.orchestrator.inputs import CycleInputs
from engs.shared.layout import Priority, state_dtype
from tests.services.orchestrator.helpers import make_engs


def test_fill_leaves_the_loop_fields_and_stamp_writes_them() -> None:
    engs = make_engs()
    engs.step(CycleInputs(reward=0.5), None)
    rec = np.zeros((), state_dtype(engs.config.shm.max_areas))
    scratch = np.zeros_like(rec)
    publish.fill(engs, rec)
    assert all(int(rec[f]) == 0 for f in publish.LOOP_FIELDS)
    assert rec["spectral_abscissa"] == engs.stability_report().spectral_abscissa < 0
    crc = publish.dynamic_crc(rec, scratch)
    publish.stamp(rec, 5, 123, 9, 456, Priority.CRITICAL)
    assert (int(rec["seq"]), int(rec["signal_id"]), int(rec["priority"])) == (5, 9, 2)
    assert publish.dynamic_crc(rec, scratch) == crc  # the loop's fields are not checked
    rec["dopamine"] += 0.25
    assert publish.dynamic_crc(rec, scratch) != crc
