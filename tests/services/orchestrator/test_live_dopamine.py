"""Issue #12 on the real service: `engs up`, then 200 rewards of +1 over 2 s through the
socket, as a new user would send them. D stays at or above 0.2 for the next 20 s, the
oracle sends no anhedonia request, and tonic and phasic dopamine reach the state reply
and Prometheus."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from engs.shared.client import SignalClient
from tests.services.supervisor.running import EngsUp, http_get

pytestmark = pytest.mark.slow


def _metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    if m is None:
        raise AssertionError(f"{name} not exported")
    return float(m.group(1))


def test_a_burst_of_rewards_keeps_dopamine_up_live(instance: str, tmp_path: Path) -> None:
    with EngsUp(instance, tmp_path) as up:
        up.wait_alive()
        with SignalClient(f"127.0.0.1:{up.signal_port}") as c:
            before = c.state()
            t0 = time.monotonic()
            for i in range(200):
                c.reward(1.0)
                time.sleep(max(0.0, t0 + (i + 1) * 0.01 - time.monotonic()))
            levels, rates = [], []
            t1 = time.monotonic()
            while time.monotonic() - t1 < 20.0:
                s = c.state()
                levels.append(s.dopamine)
                rates.append(s.reward_rate)
                time.sleep(0.1)
        status, body = http_get(up.metrics_url + "/metrics")
        assert status == 200
        text = body.decode()
    assert before.reward_rate == 0.0
    assert min(levels) >= 0.2, min(levels)
    assert max(levels) > before.dopamine  # the burst raised D ...
    assert max(rates) > 2.0  # ... and the average reward rate
    assert rates[-1] < max(rates)  # which decays again once the rewards stop
    anhedonia = _metric(text, 'engs_oracle_requests_total{kind="emergency_stimulus"}')
    assert anhedonia == 0.0
    assert _metric(text, "engs_average_reward_rate") > 0.5
    _metric(text, "engs_dopamine_phasic")
