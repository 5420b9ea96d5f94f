"""`python -m speech2face` is the `s2f` command."""

import sys

from .cli import main

sys.exit(main())
