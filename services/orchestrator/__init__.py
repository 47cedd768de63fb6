"""The orchestrator process: ENGS dynamics at 100 Hz on one uvloop event loop, plus the
signal socket. Sole writer of NeurochemicalState (seqlock ``control``)."""
