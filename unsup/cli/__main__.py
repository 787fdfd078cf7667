"""``python -m unsup.cli``: the ``unsup`` command (what ``torchrun -m unsup.cli`` starts)."""

import sys

from unsup.cli import main

sys.exit(main())
