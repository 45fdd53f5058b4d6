"""``python -m irouter``: the ``irouter`` command (see `irouter.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
