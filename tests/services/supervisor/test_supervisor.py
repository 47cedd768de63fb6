"""`engs up` as a user runs it: real child processes, real region, real lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engs.services.supervisor.main import InstanceBusy, acquire_instance_lock, create_region
from engs.shared.config import load_config
from engs.shared.heartbeat import Heartbeat
from engs.shared.layout import HeartbeatState, Process
from engs.shared.region import Region


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return tmp_path


def test_second_supervisor_on_the_same_instance_is_refused(
    instance: str, runtime_dir: Path
) -> None:
    lock = acquire_instance_lock(instance)
    try:
        env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir)}
        res = subprocess.run(
            [sys.executable, "-m", "engs.services.cli", "up", "--instance", instance],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            check=False,
        )
        assert res.returncode == 1
        assert f"instance '{instance}' is already run by `engs up` (pid {os.getpid()}" in res.stderr
        assert not Path(f"/dev/shm/engs-{instance}").exists()
    finally:
        lock.close()
    acquire_instance_lock(instance).close()  # released when its holder goes


def test_a_stale_region_is_replaced_but_a_live_one_is_refused(instance: str) -> None:
    cfg = load_config(env={}, overrides={"i": (("instance",), instance)})
    old = Region.create(instance, cfg.shm.max_areas, lock_memory=False)
    hb = Heartbeat(old, Process.PHYSICS)
    hb.set_state(HeartbeatState.RUNNING)
    with pytest.raises(
        InstanceBusy, match=f"in use by live processes \\(physics pid {os.getpid()}\\)"
    ):
        create_region(cfg, sys.stdout)
    hb.set_state(HeartbeatState.STOPPED)
    old.close()
    new = create_region(cfg, sys.stdout)  # the stopped instance's region is stale
    try:
        assert new.created and new.area_names == cfg.physics.areas
    finally:
        new.close()
