"""`python -m lab`: the lab's commands, run from the checkout's root."""

import sys

from lab.cli import main

sys.exit(main())
