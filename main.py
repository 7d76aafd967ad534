"""Capture Studio from a checkout: ``python main.py`` starts the app, ``python main.py run ...``
runs an engine headless (see :mod:`app.cli`; installed, the same is ``capture-studio``)."""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
