"""``python -m exchange``: see :mod:`exchange._cli`."""

import sys

from exchange._cli import main

sys.exit(main())
