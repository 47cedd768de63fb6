"""The region: created 0600 and really allocated, header checked on attach with clear
errors, pinning reported not fatal, names validated, nothing left behind."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import posix_ipc
import pytest

from engs.shared.errors import LayoutMismatch, RegionExists, RegionMissing, RegionNotReady
from engs.shared.layout import LAYOUT_VERSION, MAGIC, READY_MARK, RegionFlags, build_layout
from engs.shared.region import Region, region_name, unlink


def _shm_path(instance: str) -> Path:
    return Path("/dev/shm") / region_name(instance).lstrip("/")


def test_create_is_0600_and_fallocated(region: Region) -> None:
    st = os.stat(_shm_path(region.instance))
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_size == region.size == build_layout(8).itemsize
    # posix_fallocate reserves the pages; a bare ftruncate would leave 0 blocks.
    assert st.st_blocks * 512 >= region.size


def test_header_is_written_and_attach_sees_the_same_bytes(region: Region) -> None:
    h = region.view["header"]
    assert int(h["magic"]) == MAGIC and int(h["ready"]) == READY_MARK
    assert int(h["layout_version"]) == LAYOUT_VERSION and int(h["max_areas"]) == 8
    assert int(h["creator_pid"]) == os.getpid()
    other = Region.attach(region.instance, lock_memory=False)
    try:
        assert other.area_names == ["sensory", "motor", "limbic"]
        region.view["control"]["seq"] = 42
        assert int(other.view["control"]["seq"]) == 42
    finally:
        other.close()


def test_attach_missing_region_names_it(instance: str) -> None:
    with pytest.raises(RegionMissing) as exc:
        Region.attach(instance)
    assert str(exc.value) == (
        f"no shared-memory region /engs-{instance}: nothing is running for instance "
        f"'{instance}' (start it with `engs up --instance {instance}`)"
    )


def test_create_twice_is_refused(region: Region) -> None:
    with pytest.raises(RegionExists, match=f"/engs-{region.instance} already exists"):
        Region.create(region.instance, 8)


def test_max_areas_mismatch(region: Region) -> None:
    with pytest.raises(
        LayoutMismatch, match="created for max_areas=8, this process is configured for max_areas=16"
    ):
        Region.attach(region.instance, max_areas=16)


def test_bad_magic(region: Region) -> None:
    region.view["header"]["magic"] = 0x1234
    with pytest.raises(LayoutMismatch, match=r"bad magic 0x0000000000001234.*not an ENGS region"):
        Region.attach(region.instance)


def test_version_mismatch(region: Region) -> None:
    region.view["header"]["layout_version"] = 999
    with pytest.raises(
        LayoutMismatch, match=f"layout version 999, this build expects {LAYOUT_VERSION}"
    ):
        Region.attach(region.instance)


def test_hash_mismatch(region: Region) -> None:
    region.view["header"]["layout_hash"] ^= 1
    with pytest.raises(LayoutMismatch, match=r"layout hash .* \(same version, different build\)"):
        Region.attach(region.instance)


def test_region_that_is_not_engs_at_all(instance: str) -> None:
    shm = posix_ipc.SharedMemory(region_name(instance), posix_ipc.O_CREX, size=10)
    shm.close_fd()
    with pytest.raises(LayoutMismatch, match="10 bytes, smaller than an ENGS header"):
        Region.attach(instance, ready_timeout_s=0.05)


def test_attach_waits_for_ready_then_times_out(region: Region) -> None:
    region.view["header"]["ready"] = 0
    with pytest.raises(RegionNotReady, match=f"creator pid {os.getpid()} never finished"):
        Region.attach(region.instance, ready_timeout_s=0.05)
    # A creator finishing while an attacher waits is fine.
    timer = threading.Timer(0.05, lambda: region.view["header"].__setitem__("ready", READY_MARK))
    timer.start()
    other = Region.attach(region.instance, ready_timeout_s=2.0)
    timer.join()
    other.close()


def test_open_creates_then_attaches(instance: str) -> None:
    a = Region.open(instance, 4, area_names=["x"], lock_memory=False)
    b = Region.open(instance, 4, lock_memory=False)
    assert a.created and not b.created and b.area_names == ["x"]
    a.close()
    b.close()


def test_open_race_between_processes(instance: str) -> None:
    """Several processes open the same instance at once: exactly one creates it."""
    code = (
        "import sys; from engs.shared.region import Region; "
        f"r = Region.open({instance!r}, 4, lock_memory=False); print(int(r.created))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    created = [int(p.communicate(timeout=30)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(created) == [0, 0, 0, 1]


def test_unsafe_instance_names_are_refused() -> None:
    for bad in ("", "a/b", "../x", "-lead", "sp ace", "x" * 300):
        with pytest.raises(ValueError, match="instance name must match"):
            region_name(bad)


def test_mlock_success_is_recorded(instance: str) -> None:
    r = Region.create(instance, 2, lock_memory=True)
    try:
        assert r.pin_flags & (RegionFlags.MLOCKED | RegionFlags.MLOCK_FAILED)
        if r.pin_flags & RegionFlags.MLOCK_FAILED:
            assert r.pin_errors and "mlock" in r.pin_errors[0]
    finally:
        r.close()


@pytest.mark.skipif(
    shutil.which("setpriv") is None or shutil.which("prlimit") is None,
    reason="needs util-linux setpriv and prlimit to take CAP_IPC_LOCK away",
)
def test_mlock_failure_is_reported_not_fatal(instance: str) -> None:
    code = (
        "from engs.shared.region import Region; from engs.shared.layout import RegionFlags; "
        f"r = Region.create({instance!r}, 2); "
        "print(int(r.pin_flags), r.pin_errors[0] if r.pin_errors else '')"
    )
    cmd = [
        "setpriv",
        "--inh-caps=-ipc_lock",
        "--bounding-set=-ipc_lock",
        "prlimit",
        "--memlock=0:0",
        sys.executable,
        "-c",
        code,
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True)
    flags, _, msg = res.stdout.strip().partition(" ")
    assert RegionFlags(int(flags)) == RegionFlags.MLOCK_FAILED
    assert "mlock of" in msg and "failed: Operation not permitted" in msg
    assert "raise `ulimit -l`" in res.stderr  # and it was logged


def test_cuda_registration_without_cupy_is_reported(region: Region) -> None:
    pytest.importorskip("numpy")
    try:
        import cupy  # noqa: F401
    except ImportError:
        assert region.register_with_cuda() is False
        assert region.pin_flags & RegionFlags.CUDA_REGISTER_FAILED
        assert "cudaHostRegister of" in region.pin_errors[-1]
    else:
        pytest.skip("cupy is importable here: covered by the GPU tests")


def test_scalar_views_are_typed_and_bounded(region: Region) -> None:
    v = region.scalar("heartbeats[2].last_beat_ns")
    v[0] = -5
    assert int(region.view["heartbeats"][2]["last_beat_ns"]) == -5
    with pytest.raises(IndexError):
        region.scalar("heartbeats[9].pid")
    with pytest.raises(TypeError, match="not a scalar"):
        region.scalar("control.slots[0].rec")
    with pytest.raises(KeyError):
        region.scalar("control.nope")


def test_unlink_is_idempotent_and_close_tolerates_live_views(instance: str) -> None:
    r = Region.create(instance, 2, lock_memory=False)
    held = r.scalar("control.seq")  # a view someone still holds
    r.close()
    held[0] = 7  # the mapping is still valid while a view lives
    assert held[0] == 7
    assert unlink(instance) is True
    assert unlink(instance) is False
    assert not _shm_path(instance).exists()
    assert np.dtype("u8").itemsize == 8
