"""``python -m mididuet.daemon``: the ``mididuet`` command."""

import sys

from .cli import main

sys.exit(main())
