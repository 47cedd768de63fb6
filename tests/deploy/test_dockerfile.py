"""The Dockerfile: hadolint-clean, and built the way docs/deploy.md says.

Without a Docker engine what can be checked is: the linter, the base image and install
steps of both targets (gpu, the default, and cpu), the non-root user, the build context
(.dockerignore lets in exactly what the COPY lines need), and that the HEALTHCHECK
one-liner is the compose oracle's. The one-liner itself is run against a live oracle in
test_e2e.py; the image is built and run for real by test_compose_live.py where an engine
answers.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.deploy.tools import (
    NICE,
    ROOT,
    dockerfile_arg,
    dockerfile_instructions,
    healthcheck_command,
    load_yaml,
    require_tool,
)

DOCKERFILE = ROOT / "Dockerfile"


def _assert_hadolint_clean(path: Path) -> None:
    """hadolint finds nothing in ``path`` at any level (style included)."""
    hadolint = require_tool("hadolint")
    res = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_hadolint_finds_nothing_at_any_level() -> None:
    _assert_hadolint_clean(DOCKERFILE)


def test_a_cuda_12_runtime_base_with_nvrtc_checked_at_build_time() -> None:
    steps = dockerfile_instructions()
    assert re.fullmatch(
        r"nvidia/cuda:12\.\d+\.\d+-runtime-ubuntu\d+\.\d+", dockerfile_arg("BASE_IMAGE")
    )
    assert dockerfile_arg("ENGS_TARGET") == "gpu"  # the CUDA image stays the default
    froms = [rest for word, rest in steps if word == "FROM"]
    assert froms == ["${BASE_IMAGE}"]
    runs = re.sub(r"\s+", " ", " ".join(rest for word, rest in steps if word == "RUN"))
    # The build fails without NVRTC, on the GPU target only.
    gpu_case = re.search(r"gpu\) (.*?) ;; cpu\) ;;", runs)
    assert gpu_case, runs
    assert "ldconfig -p | grep -q 'libnvrtc\\.so\\.12'" in gpu_case.group(1)
    assert "exit 1" in gpu_case.group(1)
    assert 'python3 -m venv "${VIRTUAL_ENV}"' in runs
    assert (
        'if [ "${ENGS_TARGET}" = gpu ]; then pip install ".[gpu]"; else pip install .; fi' in runs
    )
    assert ("SHELL", '["/bin/bash", "-o", "pipefail", "-c"]') in steps


def test_pip_takes_its_index_and_links_from_build_args_unset_by_default() -> None:
    """The proxy / air-gapped path: declared without a default, so absent unless given."""
    args = {rest for word, rest in dockerfile_instructions() if word == "ARG"}
    for name in (
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "PIP_FIND_LINKS",
        "PIP_NO_INDEX",
        "PIP_TRUSTED_HOST",
    ):
        assert name in args, name
    # No RUN --mount: the classic builder (what the Compose CLI falls back to without
    # buildx, as on Debian's docker.io) must build it too.
    assert not [r for w, r in dockerfile_instructions() if w == "RUN" and "--mount" in r]


def test_the_prometheus_image_from_debian_packages_is_hadolint_clean() -> None:
    path = ROOT / "ops" / "images" / "prometheus.Dockerfile"
    _assert_hadolint_clean(path)
    text = path.read_text(encoding="utf-8")
    assert "apt-get install -y --no-install-recommends prometheus wget" in text
    assert 'ENTRYPOINT ["/usr/bin/prometheus"]' in text
    assert "USER 65534:65534" in text


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
    assert oracle["healthcheck"]["test"] == ["CMD", *NICE, "python", "-c", cmd]


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
