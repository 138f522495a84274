"""`python3 -m layers.testing LAYER --input NAME=SHAPE ...`: the gradient check's command line.

Its own entry module: `-m layers.testing.gradcheck` would run a module that the package
has already imported, and Python warns about that on every run.
"""

import sys

from layers.testing.gradcheck import main

sys.exit(main())
