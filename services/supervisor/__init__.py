"""The supervisor's process: ``engs up`` (:mod:`.main`) and, where Docker supervises
instead, the container healthcheck (:mod:`.healthcheck`).

Deliberately empty: the healthcheck runs every few seconds in its own short-lived
process and must not pay for importing the supervisor (asyncio, uvloop); both apply the
one rule of :mod:`engs.shared.liveness`.
"""
