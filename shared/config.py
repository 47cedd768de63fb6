"""Configuration: TOML decoded once into msgspec Structs.

Precedence, lowest to highest: the embedded defaults (no file needed), the TOML file
(``--config FILE`` or ``ENGS_CONFIG``), environment variables (``ENGS_INSTANCE``,
``ENGS_SIGNAL_ADDR``, ``ENGS_METRICS_ADDR``, ``ENGS_BACKEND``), then command-line
flags (``--instance``). Every Struct forbids unknown fields and carries its
constraints, so a bad value fails at start-up with a message naming the field path
(``$.physics.tick_hz``) and, for an override, the variable or flag it came from.

Each service owns its section; cross-field rules live in ``__post_init__``.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from shared.errors import ConfigError

PosFloat = Annotated[float, Meta(gt=0)]
Instance = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$")]
AreaName = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


def parse_addr(addr: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) into host and port, validated."""
    host, sep, port_s = addr.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected host:port, got {addr!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"port must be an integer, got {port_s!r} in {addr!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be in 1..65535, got {port} in {addr!r}")
    return host, port


def is_loopback(host: str) -> bool:
    """True for loopback addresses and ``localhost``; wildcard binds are not loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Section(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class ShmConfig(_Section, frozen=True):
    """The shared-memory region."""

    max_areas: Annotated[int, Meta(ge=1, le=1024)] = 16
    """Rows reserved for per-area arrays in the layout (areas in use may be fewer)."""
    lock_memory: bool = True
    """mlock the mapping in every process (failure is reported, not fatal)."""


class PhysicsConfig(_Section):
    """The 1 kHz physics engine (services/physics)."""

    tick_hz: Annotated[float, Meta(gt=0, le=100_000)] = 1000.0
    backend: Literal["auto", "numpy", "cupy"] = "auto"
    shape: Annotated[
        list[Annotated[int, Meta(ge=2, le=1 << 20)]], Meta(min_length=1, max_length=9)
    ] = msgspec.field(default_factory=lambda: [64, 64])
    """Lattice shape, one entry per dimension (periodic boundaries)."""
    areas: Annotated[list[AreaName], Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["sensory", "motor", "association", "limbic"]
    )
    """Named target areas; the lattice is split among them along its first axis."""
    wave_speed: PosFloat = 100.0
    """v₀: base wave speed in lattice spacings per second; ``area_speed`` multiplies it.
    The CFL guard clamps the product (docs/physics.md)."""
    damping: Annotated[float, Meta(ge=0)] = 0.1
    """γ₀: base damping rate in s⁻¹; ``area_damping`` multiplies it."""
    emergency_damping: Annotated[float, Meta(ge=0)] = 1.0
    """γ in s⁻¹ while CRITICAL is set (seed 003 GAP-022: γ = 1.0); never lowers γ."""
    plasticity_rate: Annotated[float, Meta(ge=0)] = 0.5
    """η₀: Hebbian rate in s⁻¹ per field unit²; ``area_plasticity`` multiplies it."""
    elasticity_rate: Annotated[float, Meta(ge=0)] = 0.5
    """λ₀: restoring rate of the conductance towards 1, in s⁻¹; ``area_elasticity``
    multiplies it."""
    conductance_min: PosFloat = 0.05
    """g_min: lower clamp of every edge conductance (dimensionless, ≤ 1)."""
    conductance_max: PosFloat = 4.0
    """g_max: upper clamp of every edge conductance (dimensionless, ≥ 1)."""
    drive_hz: Annotated[float, Meta(gt=0, le=10_000)] = 10.0
    """Carrier frequency of the sustained drive e^{iωt}, in Hz."""
    noise_amplitude: Annotated[float, Meta(ge=0)] = 0.01
    """σ: background-noise force density in field units · s^-3/2; ``area_noise``
    multiplies it."""
    seed: Annotated[int, Meta(ge=0, le=(1 << 63) - 1)] = 0
    """Seed of the background noise and of the entropy estimator's samples."""
    entropy_exact_max_nodes: Annotated[int, Meta(ge=1)] = 65536
    """On the CPU, lattices up to this many nodes get the exact entropy; larger ones the
    unbiased sampled estimator. The GPU is always exact."""
    entropy_samples: Annotated[int, Meta(ge=16, le=1 << 24)] = 4096
    """K: nodes sampled per tick by the entropy estimator (seed 003 §6.1: 4096)."""
    metric_grad_every: Annotated[int, Meta(ge=1, le=1_000_000)] = 10
    """Ticks between recomputations of the per-area metric gradient (10: 100 Hz)."""
    cost_wave_weight: Annotated[float, Meta(ge=0)] = 0.1
    """Metabolic cost per unit of Σ|∇Ψ|² (seed 003 §7.1 relative weight 0.1)."""
    cost_plasticity_weight: Annotated[float, Meta(ge=0)] = 1.5
    """Metabolic cost per unit of Σ|Δg| (seed 003 §7.1 relative weight 1.5)."""

    @property
    def dt(self) -> float:
        """The physics time step in seconds: one tick."""
        return 1.0 / self.tick_hz

    def __post_init__(self) -> None:
        if len(set(self.areas)) != len(self.areas):
            dup = sorted({a for a in self.areas if self.areas.count(a) > 1})
            raise ValueError(f"`areas` must be unique, {dup} repeated")
        if len(self.areas) > self.shape[0]:
            raise ValueError(
                f"`areas`: {len(self.areas)} areas cannot split a first axis of "
                f"{self.shape[0]} nodes"
            )
        if not self.conductance_min <= 1.0 <= self.conductance_max:
            raise ValueError(
                "`conductance_min` <= 1 <= `conductance_max` expected (the metric relaxes "
                f"to 1), got {self.conductance_min} and {self.conductance_max}"
            )


class OrchestratorConfig(_Section):
    """The 100 Hz ENGS control loop (services/orchestrator)."""

    cycle_hz: Annotated[float, Meta(gt=0, le=10_000)] = 100.0


class SignalsConfig(_Section, frozen=True):
    """The signal socket (served by the orchestrator)."""

    addr: str = "127.0.0.1:7411"
    unix_path: str | None = None
    """Optional Unix socket path (created mode 0600)."""

    def __post_init__(self) -> None:
        _check_addr(self.addr)


class MetricsConfig(_Section, frozen=True):
    """The Prometheus endpoint (served by the oracle)."""

    addr: str = "127.0.0.1:9411"

    def __post_init__(self) -> None:
        _check_addr(self.addr)


class OracleConfig(_Section, frozen=True):
    """The watchdog (services/oracle)."""

    poll_hz: Annotated[float, Meta(ge=200, le=10_000)] = 250.0


class Config(_Section, frozen=True):
    """The whole configuration of one instance."""

    instance: Instance = "engs"
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


def _check_addr(addr: str) -> None:
    try:
        parse_addr(addr)
    except ValueError as exc:
        raise ValueError(f"`addr`: {exc}") from None


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
