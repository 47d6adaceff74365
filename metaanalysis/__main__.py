"""``python -m metaanalysis ...``: the same command line as the ``metaanalysis`` script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
