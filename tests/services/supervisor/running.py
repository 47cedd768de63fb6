"""A real ``engs up`` for tests: its own instance, ports, state and runtime directories.

:class:`EngsUp` starts ``python -m engs.services.cli up`` with a generated TOML config (free
loopback ports, a temporary state dir) and ``XDG_RUNTIME_DIR`` in the test's tmp dir,
collects its output on a thread, and on exit stops it with SIGTERM — SIGKILL for it and
every child pid it announced if that fails — so a failing test leaves nothing running.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from engs.services.supervisor.main import START_ORDER
from engs.shared.liveness import Verdict, liveness
from engs.shared.region import Region

CHILDREN = START_ORDER
STARTED = re.compile(r"^\[supervisor\] started (\w+) \(pid (\d+)\)$")
#: Environment variables that would redirect the instance away from the test's own.
ENGS_ENV = ("ENGS_CONFIG", "ENGS_INSTANCE", "ENGS_SIGNAL_ADDR", "ENGS_METRICS_ADDR", "ENGS_BACKEND")


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 right now (held open until all found)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def eventually(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def http_get(url: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
    """(status, body); connection failures as status 0."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


class EngsUp:
    """``engs up`` on the CPU backend for one test; use as a context manager."""

    def __init__(self, instance: str, tmp: Path, *extra: str) -> None:
        self.instance = instance
        self.extra = extra  # more `engs up` arguments, e.g. --fresh
        self.signal_port, self.metrics_port = free_ports(2)
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}"
        self.runtime_dir = tmp / "run"
        self.runtime_dir.mkdir()
        self.config = tmp / "engs.toml"
        self.config.write_text(
            f'[orchestrator]\nstate_dir = "{tmp / "state"}"\n'
            f'[signals]\naddr = "127.0.0.1:{self.signal_port}"\n'
            f'[metrics]\naddr = "127.0.0.1:{self.metrics_port}"\n'
            '[physics]\nbackend = "numpy"\n',
            encoding="utf-8",
        )
        self.env = {k: v for k, v in os.environ.items() if k not in ENGS_ENV}
        self.env["XDG_RUNTIME_DIR"] = str(self.runtime_dir)
        self.lines: list[str] = []
        self.pids: dict[str, list[int]] = {}  # every pid announced per process, in order
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> EngsUp:
        argv = ["up", "--instance", self.instance, "--config", str(self.config), *self.extra]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engs.services.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.rstrip("\n")
            with self._lock:
                self.lines.append(line)
                if m := STARTED.match(line):
                    self.pids.setdefault(m.group(1), []).append(int(m.group(2)))

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def has_line(self, text: str) -> bool:
        with self._lock:
            return any(text in line for line in self.lines)

    def pid(self, process: str) -> int:
        """The pid of the newest incarnation of ``process``."""
        with self._lock:
            return self.pids[process][-1]

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Until the three children are started and the oracle's /healthz says ok."""

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"engs up exited early:\n{self.output()}")
            return len(self.pids) == 3 and http_get(self.metrics_url + "/healthz")[0] == 200

        eventually(ready, timeout_s, f"a healthy instance; output so far:\n{self.output()}")

    def wait_alive(self, timeout_s: float = 30.0) -> None:
        """Until healthy and the oracle's liveness rule judges all three children alive
        (each beats and, for the two writers, publishes fresh records)."""
        self.wait_healthy(timeout_s)

        def alive() -> bool:
            region = Region.attach(self.instance, lock_memory=False)
            try:
                verdicts = liveness(region)
            finally:
                region.close()
            return all(verdicts[p].verdict is Verdict.ALIVE for p in CHILDREN)

        eventually(alive, timeout_s, f"three live children; output so far:\n{self.output()}")

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, as a user's Ctrl-C or `docker stop` would; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout_s)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.proc is not None
        try:
            self.stop()
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        finally:
            with self._lock:
                pids = [p for ps in self.pids.values() for p in ps]
            for pid in pids:
                if self._ours(pid):
                    os.kill(pid, signal.SIGKILL)

    def _ours(self, pid: int) -> bool:
        """A running child of this instance (not a pid reused by someone else since)."""
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            return False
        return running(pid) and self.instance.encode() in argv
