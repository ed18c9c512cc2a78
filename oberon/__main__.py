"""`python -m oberon` runs the `oberon` command."""

import sys

from oberon.cli import main

sys.exit(main())
