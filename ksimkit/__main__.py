"""``python -m ksimkit``: the ``ksim`` command."""

import sys

from ksimkit.simulators.cli import main

sys.exit(main())
