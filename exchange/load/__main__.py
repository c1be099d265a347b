"""``python -m exchange.load``: see :mod:`exchange.load.cli`."""

import sys

from exchange.load.cli import main

sys.exit(main())
