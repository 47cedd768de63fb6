"""``[metrics]``: the Prometheus endpoint (served by the oracle)."""

from __future__ import annotations

from engs.shared.config.base import (
    Section,
    check_addr,
)


class MetricsConfig(Section, frozen=True):
    """The Prometheus endpoint (served by the oracle)."""

    addr: str = "127.0.0.1:9411"
    """Address of the oracle's /metrics and /healthz, host:port."""

    def __post_init__(self) -> None:
        check_addr(self.addr)
