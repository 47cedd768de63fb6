"""Where an instance listens, published in its region and read back."""

from __future__ import annotations

import pytest

from engs.shared.endpoints import connect_addr, publish_metrics, publish_signals, read_endpoints
from engs.shared.region import Region


def test_nothing_published_reads_as_none(region: Region) -> None:
    e = read_endpoints(region)
    assert (e.signal_tcp, e.signal_unix, e.metrics, e.metrics_url) == (None, None, None, None)


def test_published_endpoints_read_back_from_another_mapping(region: Region) -> None:
    publish_signals(region, "127.0.0.1:40001", "/run/engs/x.sock")
    publish_metrics(region, "[::1]:40002")
    other = Region.attach(region.instance, lock_memory=False)
    try:
        e = read_endpoints(other)
    finally:
        other.close()
    assert e.signal_tcp == "127.0.0.1:40001" and e.signal_unix == "/run/engs/x.sock"
    assert e.metrics_url == "http://[::1]:40002"
    publish_signals(region, "127.0.0.1:40003")  # a restarted orchestrator, no Unix socket
    e = read_endpoints(region)
    assert e.signal_tcp == "127.0.0.1:40003" and e.signal_unix is None


def test_an_address_too_long_for_the_slot_is_refused(region: Region) -> None:
    with pytest.raises(ValueError, match="longer than 111 bytes"):
        publish_signals(region, "127.0.0.1:1", "/" + "x" * 120)


@pytest.mark.parametrize(
    ("bound", "dial"),
    [
        ("127.0.0.1:7411", "127.0.0.1:7411"),
        ("0.0.0.0:7411", "127.0.0.1:7411"),
        ("[::]:7411", "[::1]:7411"),
        ("[::1]:7411", "[::1]:7411"),
        ("engs-orchestrator:7411", "engs-orchestrator:7411"),
    ],
)
def test_a_wildcard_bind_is_dialled_on_loopback(bound: str, dial: str) -> None:
    assert connect_addr(bound) == dial
