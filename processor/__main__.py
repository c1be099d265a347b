"""``python -m processor``: see ``processor.cli``."""

from common.startup import exit_quietly, without_pandas

without_pandas()

from processor.cli import main  # noqa: E402

exit_quietly(main())
