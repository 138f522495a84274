"""`python3 -m caffebox_layers.testing LAYER --input NAME=SHAPE ...`: the gradient check.

Its own entry module: `-m caffebox_layers.testing.gradcheck` would run a module that the package
has already imported, and Python warns about that on every run.
"""

import sys

from caffebox_layers.testing.gradcheck import main

sys.exit(main())
