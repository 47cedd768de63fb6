"""Configuration: TOML decoded once into msgspec Structs.

Precedence, lowest to highest: the embedded defaults (no file needed), the TOML file
(``--config FILE`` or ``ENGS_CONFIG``), environment variables (``ENGS_INSTANCE``,
``ENGS_SIGNAL_ADDR``, ``ENGS_METRICS_ADDR``, ``ENGS_BACKEND``), then command-line
flags (``--instance``). Every Struct forbids unknown fields and carries its
constraints, so a bad value fails at start-up with a message naming the field path
(``$.physics.tick_hz``) and, for an override, the variable or flag it came from.

Each service owns its section, one module each (``base``, ``shm``, ``physics``,
``orchestrator``, ``areas``, ``signals``, ``metrics``, ``oracle``); cross-field rules live
in ``__post_init__``. Import from here: ``from engs.shared.config import Config``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from engs.shared.config.areas import (
    AreaRole,
    AreasConfig,
    AuditConfig,
    ConsolidationConfig,
    DriverSignal,
    HomeostasisConfig,
    NtName,
    NucleusSpec,
    ProjectionSpec,
    ReceptorConfig,
    ScalingConfig,
    SiteName,
)
from engs.shared.config.base import (
    Instance,
    PosFloat,
    Section,
    is_loopback,
    parse_addr,
)
from engs.shared.config.metrics import (
    MetricsConfig,
)
from engs.shared.config.oracle import (
    OracleConfig,
)
from engs.shared.config.orchestrator import (
    BoredomConfig,
    CouplingConfig,
    CriticConfig,
    DopamineConfig,
    MetabolismConfig,
    NapConfig,
    NorepinephrineConfig,
    OrchestratorConfig,
    PriorityConfig,
    ReplayConfig,
    SerotoninConfig,
    SessionLogConfig,
)
from engs.shared.config.physics import (
    PhysicsConfig,
)
from engs.shared.config.shm import (
    ShmConfig,
)
from engs.shared.config.signals import (
    SignalsConfig,
)
from engs.shared.errors import ConfigError


class Config(Section, frozen=True):
    """The whole configuration of one instance."""

    instance: Instance = "engs"
    """Instance name: the region is /dev/shm/engs-<instance>; several instances can share
    a host. Flag: ``--instance``."""
    shm: ShmConfig = msgspec.field(default_factory=ShmConfig)
    physics: PhysicsConfig = msgspec.field(default_factory=PhysicsConfig)
    orchestrator: OrchestratorConfig = msgspec.field(default_factory=OrchestratorConfig)
    signals: SignalsConfig = msgspec.field(default_factory=SignalsConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    oracle: OracleConfig = msgspec.field(default_factory=OracleConfig)

    def __post_init__(self) -> None:
        if len(self.physics.areas) > self.shm.max_areas:
            raise ValueError(
                f"{len(self.physics.areas)} physics areas exceed shm.max_areas="
                f"{self.shm.max_areas} - at `$.physics.areas`"
            )


#: Environment variables and the field each overrides.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "ENGS_INSTANCE": ("instance",),
    "ENGS_SIGNAL_ADDR": ("signals", "addr"),
    "ENGS_METRICS_ADDR": ("metrics", "addr"),
    "ENGS_BACKEND": ("physics", "backend"),
}


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, tuple[tuple[str, ...], Any]] | None = None,
) -> Config:
    """Load the configuration.

    ``path``: a TOML file; if None, ``ENGS_CONFIG`` from ``env`` names one, else only
    the defaults apply. ``env`` defaults to ``os.environ``. ``overrides`` maps a source
    label (e.g. ``"--instance"``) to (field path, value), applied last.
    """
    env = os.environ if env is None else env
    source = "the defaults"
    data: dict[str, Any] = {}
    if path is None and env.get("ENGS_CONFIG"):
        path = env["ENGS_CONFIG"]
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    applied: dict[tuple[str, ...], str] = {}
    for var, field in ENV_OVERRIDES.items():
        if env.get(var):
            _set(data, field, env[var])
            applied[field] = var
    for label, (field, value) in (overrides or {}).items():
        _set(data, field, value)
        applied[field] = label
    try:
        return msgspec.convert(data, Config, strict=True)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        origins = [
            f"{label} sets `$.{'.'.join(field)}`"
            for field, label in applied.items()
            if _names_field(msg, field)
        ]
        where = "; ".join(origins) if origins else f"in {source}"
        raise ConfigError(f"invalid configuration: {msg} ({where})") from None


def _names_field(msg: str, field: tuple[str, ...]) -> bool:
    """Whether a msgspec error message points at ``field`` (directly, or through a
    ``__post_init__`` message that names the leaf and its parent's path)."""
    full = "`$." + ".".join(field) + "`"
    parent = "`$" + "".join("." + f for f in field[:-1]) + "`"
    return full in msg or (f"`{field[-1]}`" in msg and parent in msg)


def _set(data: dict[str, Any], field: tuple[str, ...], value: Any) -> None:
    node = data
    for key in field[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"`$.{key}` must be a table to set `$.{'.'.join(field)}`")
        node = child
    node[field[-1]] = value


__all__ = [
    "ENV_OVERRIDES",
    "AreaRole",
    "AreasConfig",
    "AuditConfig",
    "BoredomConfig",
    "Config",
    "ConsolidationConfig",
    "CouplingConfig",
    "CriticConfig",
    "DopamineConfig",
    "DriverSignal",
    "HomeostasisConfig",
    "Instance",
    "MetabolismConfig",
    "MetricsConfig",
    "NapConfig",
    "NorepinephrineConfig",
    "NtName",
    "NucleusSpec",
    "OracleConfig",
    "OrchestratorConfig",
    "PhysicsConfig",
    "PosFloat",
    "PriorityConfig",
    "ProjectionSpec",
    "ReceptorConfig",
    "ReplayConfig",
    "ScalingConfig",
    "Section",
    "SerotoninConfig",
    "SessionLogConfig",
    "ShmConfig",
    "SignalsConfig",
    "SiteName",
    "is_loopback",
    "load_config",
    "parse_addr",
]
