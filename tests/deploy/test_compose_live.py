"""The compose deployment run for real: ``ops/compose-e2e.sh`` where a Docker engine answers.

The script builds the images from Debian packages (no registry), brings up
docker-compose.yml + docker-compose.cpu.yml + docker-compose.rootless.yml + the test
override, sends a reward with the token through the published port, queries the
containerised Prometheus, kills the orchestrator with SIGKILL inside its container and
takes everything down (docs/deploy.md, "Proving it"). Here: it exits 0, its last line is the
PASS summary, and nothing of it is left on the engine. Skipped, with the reason, where no
engine answers (CI has none: the static checks in test_compose.py, test_dockerfile.py and
test_k8s.py run there).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.deploy.tools import ROOT

pytestmark = pytest.mark.slow

SCRIPT = ROOT / "ops" / "compose-e2e.sh"


def _why_not() -> str | None:
    """Why the script cannot run here, or None."""
    docker = shutil.which("docker")
    if docker is None:
        return "no docker CLI (apt-get install docker.io)"
    try:
        res = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "the Docker engine did not answer `docker info` within 20 s"
    if res.returncode != 0:
        return f"no Docker engine answers ({res.stderr.strip().splitlines()[-1:]}); start dockerd"
    suite = "bookworm"
    base = subprocess.run(
        [docker, "image", "inspect", f"engs-debian:{suite}"], capture_output=True, check=False
    )
    if base.returncode != 0 and (shutil.which("debootstrap") is None or os.geteuid() != 0):
        return "no cached base image and no debootstrap as root to build it"
    return None


def _leftovers() -> list[str]:
    out = []
    for kind in ("container", "network", "volume"):
        argv = ["docker", kind, "ls", "--quiet", "--format", "{{.Labels}}"]
        if kind == "container":
            argv.insert(3, "--all")
        res = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
        out += [
            f"{kind}: {line}"
            for line in res.stdout.splitlines()
            if "com.docker.compose.project=engs-e2e-" in line
        ]
    res = subprocess.run(
        ["docker", "image", "ls", "--quiet", "engs:e2e"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    out += [f"image engs:e2e {i}" for i in res.stdout.split()]
    return out


def test_compose_e2e_script_passes_and_leaves_nothing() -> None:
    why = _why_not()
    if why is not None:
        pytest.skip(why)
    assert _leftovers() == [], "left over from an earlier run"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGS_", "COMPOSE_"))}
    res = subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=ROOT,
        env=env,
        check=False,
    )
    lines = res.stdout.strip().splitlines()
    assert res.returncode == 0, f"{res.stdout[-2000:]}\n{res.stderr[-6000:]}"
    assert lines and lines[-1].startswith("compose-e2e: PASS"), res.stdout
    for step in ("reward applied", "series from engs/oracle:9411", "orchestrator serving again in"):
        assert step in lines[-1], lines[-1]
    assert _leftovers() == []
