"""Metabolism: the one NMU cost scale, host calibration and thermal coupling.

The seed prices work twice, on different scales (ARCHITECTURE §6.8): §7.1 per active
node (propagation 0.1·N_active, plasticity 1.5·N_active, API call 50, self-improvement
1000), GAP-012 in NMU per step (0.1, 1.5, tool 5.0). One scale here, the NMU:

* continuous work is priced in NMU/s for the reference lattice (``reference_nodes``,
  the CPU default 64x64 = 4096) on the reference host, from GAP-012's per-step figures
  at the nominal 1 kHz: propagation 0.1 NMU/step = 100 NMU/s, plasticity at D_eq
  1.5 NMU/update = 1500 NMU/s; it scales linearly with the active node count
  (telemetry ``n_nodes``), which is what §7.1's "·N_active" means;
* discrete actions are priced per action: external call 50 NMU (§7.1: "a prohibitive
  cost" that makes the system prefer its memory; GAP-012's 5 NMU would be 50 ms of
  idle thought), self-improvement 1000 NMU (§7.1).

Calibration (GAP-012): NMU become host-relative through the score
``FLOP/s·1e-12 + GB/s·1e-3`` (GAP-012's "Base NMU" formula), measured at start-up by a
short float32 matmul and a memory copy (on the GPU too when CuPy and a device exist —
imported lazily). Every cost is multiplied by ``reference_score / score``: a slower
host pays more per operation and naps more, as GAP-012's self-regulation property says.
(GAP-012 multiplies costs *by* the score, which charges a fast host more and
contradicts the property it claims.) The benchmark is not reproducible, so its result
(:class:`Calibration`) is recorded in checkpoints and can be passed back for a replay.

Thermal coupling (GAP-012): M(T) = 1 + max(0, (T - T_target)/(T_crit - T_target))²,
with the max taken before squaring (the seed squares after, so a cool host is also
charged more); 1.0 and reported when no temperature is readable. GAP-012's
norepinephrine discount C/(1+N) ("sprint") is not applied: it contradicts GAP-005's
φ_AN (arousal *costs* ATP), which the coupling matrix carries.

Reading /sys is I/O: :func:`read_temperature` is for the caller's slow housekeeping
task, never the control cycle, which receives the reading as an input.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import numpy as np

from engs.shared.config import MetabolismConfig

THERMAL_ROOT = Path("/sys/class/thermal")


class Operation(enum.Enum):
    """Discrete, reservable operations with a configured price."""

    EXTERNAL_CALL = "external_call"
    SELF_IMPROVEMENT = "self_improvement"


class HostBenchmark(msgspec.Struct, frozen=True):
    """One device's measured throughput."""

    device: str
    flops: float
    """float32 matmul FLOP/s (best repetition)."""
    bandwidth_gbs: float
    """Copy bandwidth, GB/s counting read + write (best repetition)."""
    elapsed_s: float

    @property
    def score(self) -> float:
        return host_score(self.flops, self.bandwidth_gbs)


class Calibration(msgspec.Struct, frozen=True):
    """What the start-up calibration found; ``factor`` multiplies every cost."""

    score: float
    reference_score: float
    cpu: HostBenchmark | None = None
    gpu: HostBenchmark | None = None
    temperature_c: float | None = None
    temperature_source: str = "not read"

    @property
    def factor(self) -> float:
        return self.reference_score / self.score

    @classmethod
    def reference(cls, reference_score: float) -> Calibration:
        """The reference host itself: factor 1, no benchmark (tests, replays)."""
        return cls(score=reference_score, reference_score=reference_score)


def host_score(flops: float, bandwidth_gbs: float) -> float:
    """GAP-012's normalisation: FLOP/s·1e-12 + GB/s·1e-3."""
    return flops * 1e-12 + bandwidth_gbs * 1e-3


def _best_time(
    fn: Callable[[], object], budget_s: float, sync: Callable[[], object] | None = None
) -> float:
    """The fastest of at least three repetitions run for about ``budget_s``."""
    best = float("inf")
    deadline = time.perf_counter() + budget_s
    reps = 0
    while reps < 3 or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        best = min(best, time.perf_counter() - t0)
        reps += 1
    return best


def benchmark_cpu(budget_s: float = 0.2, n: int = 256, copy_mb: int = 32) -> HostBenchmark:
    """float32 matmul and memory copy on the host with numpy; about ``budget_s``."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty_like(a)
    t_mm = _best_time(lambda: np.matmul(a, b, out=c), budget_s / 2)
    src = np.ones(copy_mb * (1 << 20) // 4, dtype=np.float32)
    dst = np.empty_like(src)
    t_cp = _best_time(lambda: np.copyto(dst, src), budget_s / 2)
    return HostBenchmark(
        device="cpu",
        flops=2.0 * n**3 / t_mm,
        bandwidth_gbs=2.0 * src.nbytes / t_cp / 1e9,
        elapsed_s=time.perf_counter() - t0,
    )


def benchmark_gpu(budget_s: float = 0.2, n: int = 2048, copy_mb: int = 256) -> HostBenchmark | None:
    """The same on the GPU when CuPy and a device are present, else None."""
    try:
        import cupy as cp  # noqa: PLC0415 - optional dependency, imported only here
    except ImportError:
        return None
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            return None
        t0 = time.perf_counter()
        a = cp.ones((n, n), dtype=cp.float32)
        b = cp.ones((n, n), dtype=cp.float32)
        c = cp.empty_like(a)
        sync = cp.cuda.Stream.null.synchronize
        t_mm = _best_time(lambda: cp.matmul(a, b, out=c), budget_s / 2, sync)
        src = cp.ones(copy_mb * (1 << 20) // 4, dtype=cp.float32)
        dst = cp.empty_like(src)
        t_cp = _best_time(lambda: dst.__setitem__(slice(None), src), budget_s / 2, sync)
        name = cp.cuda.runtime.getDeviceProperties(0)["name"]
        name = name.decode() if isinstance(name, bytes) else str(name)
        return HostBenchmark(
            device=f"cuda:0 {name}",
            flops=2.0 * n**3 / t_mm,
            bandwidth_gbs=2.0 * src.nbytes / t_cp / 1e9,
            elapsed_s=time.perf_counter() - t0,
        )
    except Exception:  # a broken driver must not stop the orchestrator; CPU is used
        return None


def read_temperature(root: Path = THERMAL_ROOT) -> tuple[float | None, str]:
    """The hottest readable thermal zone in °C and where it came from, or None."""
    best: tuple[float, str] | None = None
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            t = int((zone / "temp").read_text().strip()) / 1000.0
        except (OSError, ValueError):
            continue
        try:
            kind = (zone / "type").read_text().strip()
        except OSError:
            kind = "?"
        if best is None or t > best[0]:
            best = (t, f"{zone} ({kind})")
    if best is None:
        return None, f"none: no readable {root}/thermal_zone*/temp, M(T) = 1"
    return best


def thermal_multiplier(temp_c: float | None, target_c: float, critical_c: float) -> float:
    """M(T) = 1 + max(0, (T - T_target)/(T_crit - T_target))²; 1 when T is unknown."""
    if temp_c is None:
        return 1.0
    over = max(0.0, (temp_c - target_c) / (critical_c - target_c))
    return 1.0 + over * over


def calibrate(cfg: MetabolismConfig, *, use_gpu: bool = True, budget_s: float = 0.4) -> Calibration:
    """Run the start-up benchmark (well under a second) and read the temperature.

    The GPU's score is used when ``use_gpu`` and a device answered (the physics then
    runs there); the CPU's otherwise.
    """
    cpu = benchmark_cpu(budget_s / 2 if use_gpu else budget_s)
    gpu = benchmark_gpu(budget_s / 2) if use_gpu else None
    temp, source = read_temperature()
    score = (gpu or cpu).score
    return Calibration(
        score=score,
        reference_score=cfg.reference_score,
        cpu=cpu,
        gpu=gpu,
        temperature_c=temp,
        temperature_source=source,
    )


class MetabolicCosts:
    """Prices in NMU for the current calibration and temperature."""

    def __init__(self, cfg: MetabolismConfig, calibration: Calibration) -> None:
        self._cfg = cfg
        self.calibration = calibration

    def host_thermal(self, temp_c: float | None) -> float:
        """The multiplier common to every price: host factor x M(T)."""
        cfg = self._cfg
        m = thermal_multiplier(temp_c, cfg.thermal_target_c, cfg.thermal_critical_c)
        return self.calibration.factor * m

    def activity_scale(self, n_nodes: int, temp_c: float | None) -> float:
        """Multiplier of the continuous rates (and of the coupling matrix's ATP
        drains): host x thermal x n_nodes / reference_nodes."""
        return self.host_thermal(temp_c) * n_nodes / self._cfg.reference_nodes

    def equilibrium_nmu_s(self, scale: float) -> float:
        """Consumption at x_eq: propagation + plasticity at D_eq, NMU/s."""
        return (self._cfg.propagation_nmu_s + self._cfg.plasticity_nmu_s) * scale

    def operation_nmu(self, op: Operation, temp_c: float | None) -> float:
        """The calibrated price of one discrete operation, NMU."""
        base = {
            Operation.EXTERNAL_CALL: self._cfg.external_call_nmu,
            Operation.SELF_IMPROVEMENT: self._cfg.self_improvement_nmu,
        }[op]
        return base * self.host_thermal(temp_c)
