"""``python -m services.cli`` is ``engs``."""

import sys

from services.cli import main

sys.exit(main())
