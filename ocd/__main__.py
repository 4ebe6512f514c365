"""``python -m ocd`` is the ``ocd`` command."""

import sys

from ocd.cli import main

sys.exit(main())
