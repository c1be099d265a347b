"""``python -m processor``: see ``processor.cli``."""

from common.startup import exit_quietly, keep_freed_memory, without_pandas

without_pandas()
keep_freed_memory()

from processor.cli import main  # noqa: E402

exit_quietly(main())
