"""`python -m oberon` runs the `oberon` command."""

import sys

from oberon.runtime.cli import main

sys.exit(main())
