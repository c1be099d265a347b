"""``python -m engine``: see ``engine.cli``."""

import sys

from common.startup import without_pandas

without_pandas()

from engine.cli import main  # noqa: E402

sys.exit(main())
