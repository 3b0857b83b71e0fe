"""``python -m rtedge``: the same as the ``rtedge`` command.

Owns: ``python -m rtedge``.  Must not: hold any logic of its own.
"""

import sys

from .app.cli import main

sys.exit(main())
