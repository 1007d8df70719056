"""``python -m benchmarks [--quick] [--backends sqlite,postgresql] [--only W1,W3] [--reps 3]``."""

import sys

from benchmarks.cli import main

sys.exit(main())
