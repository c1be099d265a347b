"""``python -m engine``: see ``engine.cli``."""

from common.startup import exit_quietly, without_pandas

without_pandas()

from engine.cli import main  # noqa: E402

exit_quietly(main())
