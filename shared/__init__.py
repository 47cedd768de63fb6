"""ENGS shared package: everything that crosses a process boundary.

The shared-memory layout (:mod:`shared.layout`), the region that holds it
(:mod:`shared.region`), the double-buffered seqlock (:mod:`shared.seqlock`), the
priority interrupt word (:mod:`shared.interrupt`), heartbeats and stats
(:mod:`shared.heartbeat`, :mod:`shared.stats`), configuration (:mod:`shared.config`),
clocks (:mod:`shared.clock`) and the exception hierarchy (:mod:`shared.errors`).

Every process imports these; no process computes an offset of its own.
"""
