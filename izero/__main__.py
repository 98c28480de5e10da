"""``python -m izero``: the ``izero`` command."""

from izero.cli import main

raise SystemExit(main())
