"""ENGS shared package: everything that crosses a process boundary.

The shared-memory layout (:mod:`engs.shared.layout`), the region that holds it
(:mod:`engs.shared.region`), the double-buffered seqlock (:mod:`engs.shared.seqlock`), the
priority interrupt word (:mod:`engs.shared.interrupt`), heartbeats and stats
(:mod:`engs.shared.heartbeat`, :mod:`engs.shared.stats`), configuration (:mod:`engs.shared.config`),
clocks (:mod:`engs.shared.clock`) and the exception hierarchy (:mod:`engs.shared.errors`).

Every process imports these; no process computes an offset of its own.
"""
