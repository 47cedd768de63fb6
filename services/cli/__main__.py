"""``python -m engs.services.cli`` is ``engs``."""

import sys

from engs.services.cli import main

sys.exit(main())
