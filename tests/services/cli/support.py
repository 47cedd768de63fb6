"""Running the real ``engs`` command line in a child process, for the CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys


def engs(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m engs.services.cli ARGS`` with no inherited ``ENGS_*`` variables but
    those in ``env``; its output captured, its exit status not checked."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ENGS_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "engs.services.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        check=False,
    )
