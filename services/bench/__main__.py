"""``python -m engs.services.bench TARGET [flags]``: one target, outside the CLI."""

from __future__ import annotations

import sys

from engs.services.bench import TARGETS, main

if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
    print(f"usage: python -m engs.services.bench {{{','.join(TARGETS)}}} [flags]", file=sys.stderr)
    raise SystemExit(2)
raise SystemExit(main(sys.argv[1], sys.argv[2:]))
