"""Record and replay: the orchestrator's session log and ``engs replay``.

The dynamics are a deterministic function of (configuration, host calibration, starting
snapshot, and per cycle: the inputs and the telemetry read). The loop appends exactly
that to a bounded, segmented log: each segment opens with a ``Header`` (configuration,
calibration, the full ``EngsSnapshot`` at that cycle) followed by one ``CycleRecord``
per cycle (cycle number, the cycle's inputs — every signal accepted in it —, the
telemetry bytes it read, and a CRC-32 of the dynamic part of the NeurochemicalState it
published). A segment that grows past ``segment_bytes`` is closed and a new one opened
with a fresh header; only the newest ``segments`` are kept, so the log is bounded.

Every segment pays for one full snapshot (hundreds of KiB to a few MiB, mostly the
replay buffer), so a ``segment_bytes`` near that size would rotate — and fsync a new
snapshot — several times a second. :func:`min_segment_bytes` is the least that keeps
snapshots to at most half of every segment; the orchestrator refuses to start below it.

``replay(path)`` rebuilds the dynamics from a segment's header and re-runs every cycle
headless, faster than real time, comparing each published state's CRC with the recorded
one: the run is reproduced bit for bit or the first divergent cycle is reported.

Framing: 4-byte big-endian length + msgpack, so a segment cut short by a crash is read
up to its last whole record.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import numpy as np

from engs.services.orchestrator import publish
from engs.services.orchestrator.dream import DreamBuffer, DreamState
from engs.services.orchestrator.engs import Engs
from engs.services.orchestrator.inputs import N_DMN, CycleInputs
from engs.services.orchestrator.metabolism import Calibration
from engs.services.orchestrator.snapshot import EngsSnapshot
from engs.shared.config import Config
from engs.shared.errors import ConfigError, EngsError
from engs.shared.layout import state_dtype, telemetry_dtype

FORMAT_VERSION = 1
_LEN = struct.Struct(">I")
#: NeurochemicalState fields set by the loop from clocks and the socket, not by the
#: dynamics; zeroed before the CRC so replay compares only what the dynamics decide.


class ReplayError(EngsError):
    """A session log that cannot be read, or a replay that diverged."""


class Header(msgspec.Struct, tag="header", frozen=True):
    version: int
    config: dict[str, Any]
    calibration: Calibration
    snapshot: EngsSnapshot
    cycle: int
    max_areas: int
    wall_ns: int


class LedgerOp(msgspec.Struct, frozen=True, array_like=True):
    """A metabolic-lock call made over the socket between two cycles."""

    kind: str  # "reserve" | "commit" | "abort"
    cost: float = 0.0
    task: str = ""
    lock: int = 0


class CycleRecord(msgspec.Struct, tag="cycle", frozen=True):
    cycle: int
    inputs: CycleInputs
    telemetry: bytes | None
    state_crc: int
    ledger_ops: list[LedgerOp] = msgspec.field(default_factory=list)
    """Lock calls made since the previous cycle, in order (applied before the step)."""


Record = Header | CycleRecord


#: Bytes a msgpack ``bin`` length prefix can grow by (bin8 → bin32) as a field fills.
_BIN_PREFIX_GROWTH = 4


def _replay_row_bytes(st: DreamState) -> int:
    """Bytes one experience adds to a :class:`DreamState` of this shape."""
    one = DreamBuffer(1, st.n_features, st.n_areas, 1.0)
    one.add(0, np.zeros(st.n_features), 0.0, 0.0, (0.0,) * 4, None, (0.0,) * N_DMN)
    row = one.state()
    return sum(len(getattr(row, f)) for f in _REPLAY_FIELDS)


_REPLAY_FIELDS = ("cycle", "features", "reward", "td_error", "levels", "activity", "dmn")


def header_bytes_bound(engs: Engs, cfg: Config) -> int:
    """The size of the largest segment header ``engs`` can write: its header now, with
    the replay buffer grown to its capacity (the one part of a snapshot that grows)."""
    snap = engs.state_dict()
    header = Header(
        version=FORMAT_VERSION,
        config=msgspec.to_builtins(cfg),
        calibration=engs.calibration,
        snapshot=snap,
        cycle=engs.cycle,
        max_areas=cfg.shm.max_areas,
        wall_ns=time.time_ns(),
    )
    size = _LEN.size + len(msgspec.msgpack.encode(header))
    if snap.replay is not None:
        free = snap.replay.capacity - snap.replay.size
        size += free * _replay_row_bytes(snap.replay)
        size += _BIN_PREFIX_GROWTH * len(_REPLAY_FIELDS)
    return size


def min_segment_bytes(engs: Engs, cfg: Config) -> int:
    """The smallest ``session_log.segment_bytes`` for this configuration: twice the
    largest header (snapshots at most half of every segment), rounded up to a KiB."""
    return -(-2 * header_bytes_bound(engs, cfg) // 1024) * 1024


def check_segment_bytes(engs: Engs, cfg: Config) -> None:
    """ConfigError naming the field and the minimum when segments are too small."""
    have = cfg.orchestrator.session_log.segment_bytes
    need = min_segment_bytes(engs, cfg)
    if have < need:
        raise ConfigError(
            f"invalid configuration: `$.orchestrator.session_log.segment_bytes` = {have} is "
            f"below the minimum of {need} bytes for this configuration: every segment opens "
            f"with a full snapshot of the dynamics (up to {need // 2048} KiB here, with a "
            f"full replay buffer), which may take at most half of a segment; raise it to at "
            f"least {need} or disable the log (`session_log.enabled = false`)"
        )


class SessionLog:
    """The writer, owned by the orchestrator loop (one thread)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        instance: str,
        cfg: Config,
        *,
        segment_bytes: int,
        segments: int,
        finisher: Executor | None = None,
    ) -> None:
        """``finisher``: where a full segment is flushed, fsynced and closed on rotation,
        so the control cycle that rotates never waits on the disk (inline if None)."""
        self.finisher = finisher
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prefix = f"session-{instance}-"
        self.cfg = cfg
        self.segment_bytes = segment_bytes
        self.segments = segments
        self._enc = msgspec.msgpack.Encoder()
        self._file: BinaryIO | None = None
        self._size = 0
        existing = self._existing()
        self._next_index = (int(existing[-1].stem.rsplit("-", 1)[1]) + 1) if existing else 1
        self.path: Path | None = None

    def _existing(self) -> list[Path]:
        return sorted(
            self.dir.glob(f"{self.prefix}*.log"), key=lambda p: int(p.stem.rsplit("-", 1)[1])
        )

    def _write(self, rec: Record) -> None:
        if self._file is None:
            raise ReplayError("session log is closed")
        body = self._enc.encode(rec)
        self._file.write(_LEN.pack(len(body)))
        self._file.write(body)
        self._size += _LEN.size + len(body)

    def open_segment(self, engs: Engs) -> Path:
        """Start a new segment whose header snapshots ``engs`` as it is now."""
        if self._file is not None:
            full, self._file = self._file, None
            if self.finisher is not None:
                self.finisher.submit(_finish, full)
            else:
                _finish(full)
        path = self.dir / f"{self.prefix}{self._next_index:06d}.log"
        self._next_index += 1
        self._file = path.open("wb", buffering=1 << 16)
        self._size = 0
        self.path = path
        self._write(
            Header(
                version=FORMAT_VERSION,
                config=msgspec.to_builtins(self.cfg),
                calibration=engs.calibration,
                snapshot=engs.state_dict(),
                cycle=engs.cycle,
                max_areas=self.cfg.shm.max_areas,
                wall_ns=time.time_ns(),
            )
        )
        for old in self._existing()[: -self.segments]:
            old.unlink(missing_ok=True)
        return path

    def append(
        self,
        engs: Engs,
        cycle: int,
        inputs: CycleInputs,
        telemetry: np.ndarray[Any, Any] | None,
        state_crc: int,
        ledger_ops: list[LedgerOp],
    ) -> None:
        """Record one cycle (call after the step); rotates when the segment is full.
        The new segment's header holds the state *after* this cycle, so the cycle is
        recorded in the old segment first and no cycle falls between segments."""
        if self._file is None:
            self.open_segment(engs)
        self._write(CycleRecord(cycle, inputs, _tel_bytes(telemetry), state_crc, ledger_ops))
        if self._size >= self.segment_bytes:
            self.open_segment(engs)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            _finish(self._file)
            self._file = None


def _finish(f: BinaryIO) -> None:
    """Make a segment durable and close it."""
    f.flush()
    os.fsync(f.fileno())
    f.close()


def _tel_bytes(tel: np.ndarray[Any, Any] | None) -> bytes | None:
    return None if tel is None else tel.tobytes()


def read_records(path: str | os.PathLike[str]) -> Iterator[Record]:
    """Every whole record of a segment (a torn tail from a crash is ignored)."""
    dec = msgspec.msgpack.Decoder(Record)
    with Path(path).open("rb") as f:
        while True:
            head = f.read(_LEN.size)
            if len(head) < _LEN.size:
                return
            (n,) = _LEN.unpack(head)
            body = f.read(n)
            if len(body) < n:
                return
            try:
                yield dec.decode(body)
            except msgspec.DecodeError as exc:
                raise ReplayError(f"{path}: corrupt record: {exc}") from exc


@dataclass(frozen=True)
class ReplayResult:
    path: str
    cycles: int
    first_cycle: int
    last_cycle: int
    mismatches: int
    first_mismatch: int | None
    elapsed_s: float
    simulated_s: float

    @property
    def speedup(self) -> float:
        return self.simulated_s / self.elapsed_s if self.elapsed_s > 0 else float("inf")


def replay(path: str | os.PathLike[str]) -> ReplayResult:
    """Re-run a segment headless; compare every published state with the recording."""
    records = read_records(path)
    header = next(records, None)
    if not isinstance(header, Header):
        raise ReplayError(f"{path}: not a session log segment (no header)")
    if header.version != FORMAT_VERSION:
        raise ReplayError(f"{path}: format version {header.version}, expected {FORMAT_VERSION}")
    cfg = msgspec.convert(header.config, Config)
    engs = Engs(cfg, calibration=header.calibration)
    engs.load_state_dict(header.snapshot)
    rec = np.zeros((), dtype=state_dtype(header.max_areas))
    scratch = np.zeros((), dtype=state_dtype(header.max_areas))
    tel_dt = telemetry_dtype(header.max_areas)
    n = mismatches = 0
    first = last = header.cycle
    first_bad: int | None = None
    t0 = time.perf_counter()
    for r in records:
        if not isinstance(r, CycleRecord):
            raise ReplayError(f"{path}: a second header inside one segment")
        tel = None if r.telemetry is None else np.frombuffer(r.telemetry, dtype=tel_dt)[0]
        for op in r.ledger_ops:
            if op.kind == "reserve":
                lock = engs.try_reserve(op.cost, op.task)
                if (0 if lock is None else lock.id) != op.lock:
                    raise ReplayError(
                        f"{path}: cycle {r.cycle}: reserve gave lock "
                        f"{lock and lock.id}, recorded {op.lock}"
                    )
            elif op.kind == "commit":
                engs.commit(op.lock)
            elif op.kind == "abort":
                engs.abort(op.lock)
            else:
                raise ReplayError(f"{path}: cycle {r.cycle}: unknown ledger op {op.kind!r}")
        engs.step(r.inputs, tel)
        publish.fill(engs, rec)
        if publish.dynamic_crc(rec, scratch) != r.state_crc:
            mismatches += 1
            if first_bad is None:
                first_bad = r.cycle
        if n == 0:
            first = r.cycle
        last = r.cycle
        n += 1
    elapsed = time.perf_counter() - t0
    return ReplayResult(
        str(path), n, first, last, mismatches, first_bad, elapsed, n * cfg.orchestrator.dt
    )
