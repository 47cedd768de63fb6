"""Oracle → orchestrator requests: every increment is taken exactly once, across processes."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from engs.shared.region import Region
from engs.shared.requests import RequestReceiver, RequestSender

ctx = mp.get_context("fork")


def _send(instance: str, n: int) -> None:
    s = RequestSender(Region.attach(instance, lock_memory=False))
    for i in range(n):
        s.request("emergency_stimulus" if i % 3 else "serotonin_boost")


def test_each_request_is_taken_exactly_once(region: Region) -> None:
    rx = RequestReceiver(region)
    assert rx.take() == {}
    p = ctx.Process(target=_send, args=(region.instance, 3000))
    p.start()
    total: dict[str, int] = {}
    while p.is_alive():
        for k, v in rx.take().items():
            total[k] = total.get(k, 0) + v
    p.join()
    for k, v in rx.take().items():
        total[k] = total.get(k, 0) + v
    assert total == {"serotonin_boost": 1000, "emergency_stimulus": 2000}
    assert rx.pending() == {} and rx.take() == {}


def test_pending_does_not_consume_and_unknown_kinds_are_named(region: Region) -> None:
    tx, rx = RequestSender(region), RequestReceiver(region)
    assert tx.request("serotonin_boost") == 1
    assert rx.pending() == {"serotonin_boost": 1} == rx.pending()
    assert rx.take() == {"serotonin_boost": 1}
    with pytest.raises(KeyError, match="unknown request kind 'hug'"):
        tx.request("hug")
