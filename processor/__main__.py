"""``python -m processor``: see ``processor.cli``."""

from processor.cli import main

raise SystemExit(main())
