"""``engs up``: the supervisor, the embedded default deployment for one machine.

Owns the instance: takes an exclusive lock on it, creates the region, starts physics,
orchestrator and oracle as child processes (each ``engs <service>`` with the same config
and instance), prefixes their output with the process name, restarts a child that exits
or whose heartbeat freezes (within 2 s, with backoff, and says so), and on SIGINT/SIGTERM
stops them in order — orchestrator (no new signals, last state published), physics, then
oracle (watching until the end) — unlinks the region and exits 0.

A child that exits with 2 (bad configuration) or 69 (not available on this machine, e.g.
the CuPy backend demanded without a GPU) is not restarted:
restarting cannot help, so the supervisor stops everything and exits with that code.

Restarts are told apart by how the child ran. One whose heartbeat had said RUNNING
for ``HEALTHY_AFTER_S`` (a kill, an OOM, a crash after healthy running) is restarted at
once — its exit wakes the watch loop, no 0.1 s poll — so the service is usable again
within 2 s of any single kill, however many came before (docs/deploy.md has the
measurements). One that dies sooner crashed at start: it waits out a backoff (0.25 s,
doubling to 1.5 s, reset once a child has run healthily), so a crash loop at start-up
does not spin. Restarts are scheduled, not slept on: while one child waits out its
backoff, the supervisor keeps beating its heartbeat and watching the others. Each child is started
with a parent-death signal (SIGTERM): if the supervisor itself dies without stopping
them (SIGKILL, the OOM killer), they stop cleanly instead of running on unsupervised,
and the next ``engs up`` replaces their region as stale.

Before any child starts it checks that the instance is free (the flock), that the
signal and metrics ports can be bound (a clear refusal naming the port and its config
field, instead of a physics that starts and an orchestrator that dies a second later),
and, with ``--fresh``, moves the last checkpoint aside. On a clean stop it removes its
lock file.

Health: a child is restarted when :func:`engs.shared.liveness.judge_process` —
the one rule the compose healthcheck applies too — has called it ``unhealthy`` (dead,
frozen, failed) for ``frozen_after_s`` in a row, after its ``start_grace_s``. A physics
that is ``degraded`` (missing deadlines) is not restarted: it logs why itself.

Under docker compose there is no supervisor: Docker's restart policies and the
healthchecks in :mod:`engs.services.supervisor.healthcheck` take its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from engs.shared.clock import NS_PER_S, monotonic_ns
from engs.shared.config import ENV_OVERRIDES, Config, parse_addr
from engs.shared.errors import EngsError, RegionExists
from engs.shared.heartbeat import Heartbeat, pid_alive, read_heartbeats
from engs.shared.layout import HeartbeatState, Process
from engs.shared.liveness import Status, Verdict, judge_region
from engs.shared.region import Region, unlink
from engs.shared.stats import StatsWriter

#: Start order; shutdown is ORCHESTRATOR, PHYSICS, ORACLE.
START_ORDER = (Process.PHYSICS, Process.ORCHESTRATOR, Process.ORACLE)
STOP_ORDER = (Process.ORCHESTRATOR, Process.PHYSICS, Process.ORACLE)
FATAL_EXIT_CODES = {2: "bad configuration", 69: "not available on this machine"}
#: Restart backoff of a child that crashed at start: first delay, and the cap (with the
#: 0.1 s watch period: running again within 2 s).
BACKOFF_FIRST_S = 0.25
BACKOFF_MAX_S = 1.5
#: A child whose heartbeat has said RUNNING this long ran healthily: if it dies it is
#: restarted at once and its backoff starts over; one that dies sooner crashed at start.
HEALTHY_AFTER_S = 2.0

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class InstanceBusy(EngsError):
    """Another supervisor, or live services, already own this instance."""


class PortUnavailable(EngsError):
    """A port the instance needs cannot be bound (in use, or not allowed)."""


@dataclass
class Child:
    process: Process
    argv: list[str]
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    backoff_s: float = BACKOFF_FIRST_S
    started_ns: int = 0
    restart_at_ns: int | None = None  # a restart is scheduled for then
    pump: asyncio.Task[None] | None = None
    exit_codes: list[int] = field(default_factory=list)
    healthy_since_ns: int | None = None  # its heartbeat has said RUNNING since then
    waiter: asyncio.Task[None] | None = None  # wakes the watch loop when it exits
    unhealthy_since_ns: int | None = None  # the health rule has said unhealthy since

    @property
    def name(self) -> str:
        return self.process.name.lower()


def _lock_path(instance: str) -> Path:
    return (
        Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"engs-{instance}.lock"
    )


def acquire_instance_lock(instance: str) -> IO[str]:
    """An exclusive, crash-safe (flock) lock on the instance; InstanceBusy if taken.

    The holder removes the file when it stops (:func:`release_instance_lock`), so a
    lock taken on a file that was unlinked meanwhile is worthless: retry on the file
    the path names now (the inode check).
    """
    path = _lock_path(instance)
    while True:
        f = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise InstanceBusy(
                f"instance {instance!r} is already run by `engs up` (pid {holder}, lock "
                f"{path}); stop it first or pick another --instance"
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()  # its holder removed it between our open and our flock
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def release_instance_lock(f: IO[str], instance: str) -> None:
    """Remove the lock file (while still holding it), then release it."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_lock_path(instance))
    f.close()


#: The addresses the instance binds, by config field.
PORT_FIELDS = (("signals", "addr"), ("metrics", "addr"))


def check_ports(cfg: Config) -> None:
    """Bind each TCP address the instance will serve (as its servers do: SO_REUSEADDR),
    then let go; PortUnavailable naming the port, the config field and its environment
    variable if one cannot be bound. Run before any child starts."""
    env = {f: var for var, f in ENV_OVERRIDES.items()}
    held: list[socket.socket] = []  # held together: two fields on one port clash too
    try:
        for fld in PORT_FIELDS:
            addr = getattr(getattr(cfg, fld[0]), fld[1])
            host, port = parse_addr(addr)
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            held.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError as exc:
                var = env.get(fld)
                raise PortUnavailable(
                    f"port {port} ({addr}, `$.{'.'.join(fld)}`) is not available: "
                    f"{exc.strerror or exc}; another instance may be using it: stop it, or "
                    f"give this one another address (`{fld[1]}` in [{fld[0]}] of --config"
                    + (f", or {var}" if var else "")
                    + ")"
                ) from None
    finally:
        for s in held:
            s.close()


def describe_exit(code: int) -> str:
    """``exited with 1`` or ``was killed by SIGKILL`` (asyncio reports a signal as -N)."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with {code}"


def _parent_death_signal(parent_pid: int) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child receive SIGTERM when its parent dies.

    Runs in the forked child before exec; the supervisor forks from its one (event-loop)
    thread, whose exit is what the kernel watches. If the parent died before the prctl
    took effect, the child is already orphaned: it exits at once.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # libc's, already loaded
    prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def create_region(cfg: Config, out: IO[str]) -> Region:
    """Create the instance's region, replacing a stale one left by a crash; refuse if
    live processes still use it."""

    def create() -> Region:
        return Region.create(
            cfg.instance,
            cfg.shm.max_areas,
            area_names=cfg.physics.areas,
            lock_memory=cfg.shm.lock_memory,
        )

    try:
        return create()
    except RegionExists:
        pass
    try:
        old = Region.attach(cfg.instance, lock_memory=False)
    except EngsError:
        old = None  # not even readable: stale by definition
    if old is not None:
        # In use: a process the health rule's liveness sees beating, whose pid exists.
        beating = (Verdict.ALIVE, Verdict.STARTING, Verdict.FROZEN)
        live = [
            h.liveness
            for h in judge_region(old, cfg.oracle).values()
            if h.liveness.verdict in beating and pid_alive(h.liveness.pid)
        ]
        old.close()
        if live:
            who = ", ".join(f"{lv.process.name.lower()} pid {lv.pid}" for lv in live)
            raise InstanceBusy(
                f"instance {cfg.instance!r} is in use by live processes ({who}); "
                f"stop them first or pick another --instance"
            )
    unlink(cfg.instance)
    print(
        f"[supervisor] removed a stale region /engs-{cfg.instance} left by an earlier run",
        file=out,
        flush=True,
    )
    return create()


class Supervisor:
    """Runs the children until a stop signal; see the module docstring."""

    def __init__(
        self,
        cfg: Config,
        config_path: str | None,
        *,
        out: IO[str] = sys.stdout,
        frozen_after_s: float = 3.0,
        start_grace_s: float = 10.0,
        stop_timeout_s: float = 5.0,
        fresh: bool = False,
        child_args: tuple[str, ...] = (),
    ) -> None:
        self.cfg = cfg
        self.out = out
        self.frozen_after_ns = int(frozen_after_s * NS_PER_S)
        self.start_grace_ns = int(start_grace_s * NS_PER_S)
        self.stop_timeout_s = stop_timeout_s
        base = [sys.executable, "-m", "engs.services.cli"]
        common = ["--instance", cfg.instance] + (["--config", config_path] if config_path else [])
        common += child_args  # e.g. --log-level
        self.fresh = fresh
        self.children = {p: Child(p, [*base, p.name.lower(), *common]) for p in START_ORDER}
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()  # a child exited: look now, not at the next 0.1 s
        self._preexec = _parent_death_signal(os.getpid())
        self.exit_code = 0

    def say(self, msg: str) -> None:
        print(f"[supervisor] {msg}", file=self.out, flush=True)

    async def _pump(self, child: Child) -> None:
        if child.proc is None or child.proc.stdout is None:
            return
        prefix = f"[{child.name}] "
        while line := await child.proc.stdout.readline():
            self.out.write(prefix + line.decode(errors="replace"))
            self.out.flush()

    async def _notice_exit(self, proc: asyncio.subprocess.Process) -> None:
        await proc.wait()
        self._wake.set()

    def _note_healthy(self, region: Region, now: int) -> None:
        """Start each child's healthy clock when its own heartbeat first says RUNNING."""
        for beat in read_heartbeats(region, now):
            child = self.children.get(beat.process)
            if (
                child is not None
                and child.healthy_since_ns is None
                and child.proc is not None
                and child.proc.returncode is None
                and beat.pid == child.proc.pid
                and beat.state in (HeartbeatState.RUNNING, HeartbeatState.SAFE_MODE)
            ):
                child.healthy_since_ns = now

    async def _start(self, child: Child) -> None:
        child.proc = await asyncio.create_subprocess_exec(
            *child.argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # our SIGINT from a terminal is ours to forward
            preexec_fn=self._preexec,
        )
        child.restart_at_ns = None
        child.healthy_since_ns = None
        child.unhealthy_since_ns = None
        child.started_ns = monotonic_ns()
        child.pump = asyncio.create_task(self._pump(child))
        child.waiter = asyncio.create_task(self._notice_exit(child.proc))
        self.say(f"started {child.name} (pid {child.proc.pid})")

    async def _stop_child(self, child: Child) -> None:
        proc = child.proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.stop_timeout_s)
        except TimeoutError:
            self.say(f"{child.name} did not stop within {self.stop_timeout_s} s: killing it")
            proc.kill()
            await proc.wait()
        if child.pump is not None:
            await child.pump
        self.say(f"stopped {child.name} (exit {proc.returncode})")

    async def _watch(self, region: Region, hb: Heartbeat, stats: StatsWriter) -> None:
        restarts = {
            p: stats.counter("engs_restarts_total", process=p.name.lower()) for p in START_ORDER
        }
        while not self._stop.is_set():
            hb.beat()
            now = monotonic_ns()
            self._note_healthy(region, now)
            health = judge_region(region, self.cfg.oracle, now_ns=now)
            for child in self.children.values():
                proc = child.proc
                if proc is None:
                    continue
                if child.restart_at_ns is not None:
                    if now >= child.restart_at_ns:
                        await self._start(child)
                    continue
                why = None
                if proc.returncode is not None:
                    code = proc.returncode
                    if code in FATAL_EXIT_CODES:
                        self.say(
                            f"{child.name} exited with {code} "
                            f"({FATAL_EXIT_CODES[code]}): not restarting; shutting down"
                        )
                        self.exit_code = code
                        self._stop.set()
                        return
                    why = describe_exit(code)
                elif now - child.started_ns > self.start_grace_ns:
                    h = health[child.process]
                    if h.status is not Status.UNHEALTHY:
                        child.unhealthy_since_ns = None
                    elif child.unhealthy_since_ns is None:
                        child.unhealthy_since_ns = now
                    elif now - child.unhealthy_since_ns > self.frozen_after_ns:
                        for_s = (now - child.unhealthy_since_ns) / NS_PER_S
                        why = f"unhealthy for {for_s:.1f} s ({h.detail}): killed it"
                        proc.kill()
                        await proc.wait()
                if why is None:
                    continue
                if child.pump is not None:
                    await child.pump
                child.restarts += 1
                stats.inc(restarts[child.process])
                since = child.healthy_since_ns
                if since is not None and now - since >= HEALTHY_AFTER_S * NS_PER_S:
                    # It had run healthily (a kill, not a crash at start): back at once.
                    child.backoff_s = BACKOFF_FIRST_S
                    self.say(f"{child.name} {why}; restarting now (restart {child.restarts})")
                    await self._start(child)
                    continue
                delay = child.backoff_s
                child.backoff_s = min(child.backoff_s * 2, BACKOFF_MAX_S)
                child.restart_at_ns = monotonic_ns() + int(delay * NS_PER_S)
                self.say(
                    f"{child.name} {why} at start; restarting in {delay:.2f} s "
                    f"(restart {child.restarts})"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)
            self._wake.clear()

    def _keep_off_the_physics_cpus(self) -> None:
        """With ``[physics] cpu_affinity`` set, the supervisor moves itself — and so every
        child it starts — to the other CPUs it may use; the physics then moves itself onto
        its own (``setup_realtime``). The orchestrator and oracle never run on the
        physics' core: their wake-ups there were the largest share of its missed
        deadlines (docs/benchmarks.md, "Deadline misses, attributed"). Nothing happens
        when no other CPU is left; a refusal is said, never fatal."""
        pinned = self.cfg.physics.cpu_affinity
        if not pinned:
            return
        others = os.sched_getaffinity(0) - set(pinned)
        if not others:
            self.say(f"physics cpu_affinity {pinned} leaves no other CPU: sharing them")
            return
        try:
            os.sched_setaffinity(0, others)
        except OSError as exc:
            self.say(f"could not keep the other processes off CPUs {pinned}: {exc}")
            return
        self.say(f"physics on CPUs {sorted(pinned)}; orchestrator and oracle on {sorted(others)}")

    def _move_checkpoint_aside(self) -> None:
        """``--fresh``: the orchestrator starts from the built-in initial state."""
        from engs.services.orchestrator.main import state_dir  # noqa: PLC0415 - only here

        path = state_dir(self.cfg) / "checkpoint.json"
        if not path.exists():
            self.say(f"--fresh: no checkpoint at {path}; starting fresh")
            return
        aside = path.with_name(path.name + ".bak")
        os.replace(path, aside)
        self.say(f"--fresh: moved the last checkpoint aside to {aside}; starting fresh")

    async def run(self) -> int:
        lock = acquire_instance_lock(self.cfg.instance)
        try:
            check_ports(self.cfg)
            region = create_region(self.cfg, self.out)
        except BaseException:
            release_instance_lock(lock, self.cfg.instance)
            raise
        try:
            hb = Heartbeat(region, Process.SUPERVISOR)
            stats = StatsWriter(region, Process.SUPERVISOR)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._stop.set)
            self.say(
                f"instance {self.cfg.instance}: region /dev/shm/engs-{self.cfg.instance}, "
                f"signals on {self.cfg.signals.addr}"
                + (f" and {self.cfg.signals.unix_path}" if self.cfg.signals.unix_path else "")
                + f", metrics on http://{self.cfg.metrics.addr}/metrics"
            )
            if self.fresh:
                self._move_checkpoint_aside()
            self._keep_off_the_physics_cpus()
            for p in START_ORDER:
                await self._start(self.children[p])
            hb.set_state(HeartbeatState.RUNNING)
            await self._watch(region, hb, stats)
            self._stop.set()
            hb.set_state(HeartbeatState.STOPPING)
            self.say("stopping")
            for p in STOP_ORDER:
                await self._stop_child(self.children[p])
            hb.set_state(HeartbeatState.STOPPED)
        finally:
            for child in self.children.values():
                if child.proc is not None and child.proc.returncode is None:
                    child.proc.kill()
                    await child.proc.wait()
            region.close()
            unlink(self.cfg.instance)
            release_instance_lock(lock, self.cfg.instance)
        self.say(f"region unlinked; exit {self.exit_code}")
        return self.exit_code


def run(
    cfg: Config, config_path: str | None, *, fresh: bool = False, child_args: tuple[str, ...] = ()
) -> int:
    """Entry point of ``engs up``."""
    import uvloop  # noqa: PLC0415

    return uvloop.run(Supervisor(cfg, config_path, fresh=fresh, child_args=child_args).run())
