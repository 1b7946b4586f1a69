"""``python -m polyseek ...``: the ``polyseek`` command."""

import sys

from polyseek.cli import main

sys.exit(main())
