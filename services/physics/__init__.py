"""The physics process: the 1 kHz wave field on a d-dimensional torus.

Reads NeurochemicalState (seqlock ``control``) and the interrupt word at each tick
start; publishes PhysicsTelemetry (seqlock ``telemetry``), its heartbeat and its stats.
"""
