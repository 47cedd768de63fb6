"""``engs replay LOG``: re-run a recorded session segment headless and report whether
every published state was reproduced bit for bit (exit 0) or where it diverged (1)."""

from __future__ import annotations

import dataclasses
import sys

import msgspec

from engs.services.orchestrator.session import replay


def run(path: str, *, json_out: bool) -> int:
    res = replay(path)
    if json_out:
        out = dataclasses.asdict(res) | {"speedup": res.speedup}
        sys.stdout.write(msgspec.json.encode(out).decode() + "\n")
    elif res.mismatches == 0:
        print(
            f"{res.path}: {res.cycles} cycles ({res.first_cycle}..{res.last_cycle}) "
            f"reproduced bit for bit in {res.elapsed_s:.2f} s "
            f"({res.speedup:.0f}x real time)"
        )
    else:
        print(
            f"{res.path}: {res.mismatches} of {res.cycles} cycles diverged, first at "
            f"cycle {res.first_mismatch}",
            file=sys.stderr,
        )
    return 0 if res.mismatches == 0 else 1
