"""``python -m processor``: see ``processor.cli``."""

from common.startup import without_pandas

without_pandas()

from processor.cli import main  # noqa: E402

raise SystemExit(main())
