"""``python -m unsup``: the ``unsup`` command, for environments without the script on PATH."""

import sys

from unsup.cli import main

sys.exit(main())
