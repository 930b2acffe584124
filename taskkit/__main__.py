"""``python -m taskkit``: the command line, as launchers start it (``accelerate launch -m taskkit``,
``torchrun -m taskkit``)."""

import sys

from taskkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
