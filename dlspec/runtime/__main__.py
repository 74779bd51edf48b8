"""`python -m dlspec.runtime MODEL INPUT ...` runs `dlspec predict` on its own."""

import sys

from dlspec.runtime.command import main

sys.exit(main())
