"""``python -m rtedge``: the same as the ``rtedge`` command."""

import sys

from .app.cli import main

sys.exit(main())
