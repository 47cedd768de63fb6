"""``python -m engs.services.oracle [--config FILE] [--instance NAME] [-v]``: run the oracle.

The same as ``engs oracle`` (which calls :func:`engs.services.oracle.main.run`); exit codes
as the CLI's: 0 clean stop, 1 runtime failure, 2 bad configuration.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from engs.services.oracle.main import run
from engs.shared.config import load_config
from engs.shared.errors import ConfigError, EngsError


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m engs.services.oracle",
        description="Run the ENGS watchdog and Prometheus exporter.",
    )
    p.add_argument("--config", metavar="FILE", help="TOML configuration (default: ENGS_CONFIG)")
    p.add_argument("--instance", metavar="NAME", help="instance name (default: ENGS_INSTANCE)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    overrides = {"--instance": (("instance",), args.instance)} if args.instance else {}
    try:
        return run(load_config(args.config, overrides=overrides))
    except ConfigError as exc:
        print(f"engs oracle: {exc}", file=sys.stderr)
        return 2
    except EngsError as exc:
        print(f"engs oracle: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
