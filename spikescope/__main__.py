"""`python -m spikescope` is the `spikescope` command."""
import sys

from .cli import main

sys.exit(main())
