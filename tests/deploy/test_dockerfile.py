"""The Dockerfile: hadolint-clean, and built the way docs/deploy.md says.

There is no Docker engine here to build it; what can be checked without one is: the
linter, the base image and install steps, the non-root user, the build context
(.dockerignore lets in exactly what the COPY lines need), and that the HEALTHCHECK
one-liner is the compose oracle's. The one-liner itself is run against a live oracle in
test_e2e.py.
"""

from __future__ import annotations

import re
import subprocess

from tests.deploy.tools import (
    ROOT,
    dockerfile_arg,
    dockerfile_instructions,
    healthcheck_command,
    load_yaml,
    require_tool,
)

DOCKERFILE = ROOT / "Dockerfile"


def test_hadolint_finds_nothing_at_any_level() -> None:
    hadolint = require_tool("hadolint")
    res = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_a_cuda_12_runtime_base_with_nvrtc_checked_at_build_time() -> None:
    steps = dockerfile_instructions()
    assert re.fullmatch(
        r"nvidia/cuda:12\.\d+\.\d+-runtime-ubuntu\d+\.\d+", dockerfile_arg("CUDA_IMAGE")
    )
    froms = [rest for word, rest in steps if word == "FROM"]
    assert froms == ["${CUDA_IMAGE}"]
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert "ldconfig -p | grep -q 'libnvrtc\\.so\\.12'" in runs  # the build fails without it
    assert 'python3 -m venv "${VIRTUAL_ENV}"' in runs
    assert 'pip install ".[gpu]"' in runs
    assert ("SHELL", '["/bin/bash", "-o", "pipefail", "-c"]') in steps


def test_runs_as_a_numeric_non_root_user_and_starts_engs_up() -> None:
    steps = dockerfile_instructions()
    users = [rest for word, rest in steps if word == "USER"]
    assert users == ["${ENGS_UID}:${ENGS_UID}"]
    assert int(dockerfile_arg("ENGS_UID")) >= 1000
    assert steps[-2:] == [("ENTRYPOINT", '["engs"]'), ("CMD", '["up"]')]
    assert ("EXPOSE", "7411 9411") in steps


def test_healthcheck_uses_the_standard_library_against_healthz() -> None:
    cmd = healthcheck_command()
    assert "urllib.request" in cmd and "/healthz" in cmd
    for word, rest in dockerfile_instructions():  # comments aside
        assert not re.search(r"\b(curl|wget)\b", rest), f"{word} {rest}"
    oracle = load_yaml(ROOT / "docker-compose.yml")["services"]["oracle"]
    assert oracle["healthcheck"]["test"] == ["CMD", "python", "-c", cmd]


def test_dockerignore_admits_exactly_what_the_copy_lines_need() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "everything is excluded first, then re-included"
    admitted = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied: set[str] = set()
    for word, rest in dockerfile_instructions():
        if word == "COPY":
            *sources, _dest = rest.split()
            copied.update(s.rstrip("/") for s in sources if not s.startswith("--"))
    assert admitted == copied
    for path in copied:
        assert (ROOT / path).exists(), path
