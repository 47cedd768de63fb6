"""One import namespace (issue 17): ``engs`` is the only top-level package the project
installs; ``shared`` and ``services`` are folders of the checkout, not import names.

* the installed interpreter, run outside the checkout, imports ``engs.client`` and cannot
  import ``shared`` or ``services``;
* the wheel a user builds with ``pip wheel .`` holds one top-level package, ``engs``, with
  the sources as real files (the checkout's ``engs/shared`` and ``engs/services`` are links);
* no module of the project imports the old top-level names (inside the checkout they would
  still resolve, as second copies of every module).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},  # no PYTHONPATH: what a user's process sees
    )


def test_installed_namespace_outside_the_checkout(tmp_path: Path) -> None:
    ok = _run(
        "from engs.client import SignalClient, AsyncSignalClient, SignalRejected\n"
        "import engs, engs.shared.config, engs.services.orchestrator.engs\n"
        "print(engs.__version__, SignalClient.__module__)",
        tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split()[1] == "engs.shared.client"
    for name in ("shared", "services", "shared.client", "services.cli"):
        r = _run(f"import {name}", tmp_path)
        assert r.returncode != 0, f"{name} is importable outside the checkout"
        assert f"No module named '{name.split('.')[0]}'" in r.stderr, r.stderr


def test_console_script_is_the_namespaced_cli(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "engs.services.cli", "--help"],
        cwd=tmp_path,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "usage: engs" in r.stdout
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'engs = "engs.services.cli:main"' in text


@pytest.mark.slow
def test_wheel_installs_only_engs(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        check=False,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("engs-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        top = {n.split("/", 1)[0] for n in names}
        assert {t for t in top if not t.endswith(".dist-info")} == {"engs"}
        # the links became files: the client and the physics kernels are in the wheel
        for path in (
            "engs/client.py",
            "engs/shared/client.py",
            "engs/shared/py.typed",
            "engs/services/physics/field.py",
            "engs/services/cli/__main__.py",
        ):
            assert path in names, path
        assert zf.read("engs/shared/client.py") == (ROOT / "shared" / "client.py").read_bytes()


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_module_imports_the_old_top_level_names() -> None:
    offenders = []
    for folder in ("shared", "services", "tests", "engs"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if folder == "engs" and path.parent != ROOT / "engs":
                continue  # engs/shared, engs/services: the same files as shared/, services/
            bad = _imported_roots(path) & {"shared", "services"}
            if bad:
                offenders.append(f"{path.relative_to(ROOT)}: {sorted(bad)}")
    assert not offenders, offenders


def test_checkout_links_reach_the_folders() -> None:
    assert (ROOT / "engs" / "shared").resolve() == ROOT / "shared"
    assert (ROOT / "engs" / "services").resolve() == ROOT / "services"
