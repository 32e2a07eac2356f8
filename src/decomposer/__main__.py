"""`python -m decomposer`: the same entry point as the `decomposer` console script."""

import sys

from decomposer.cli.app import main

sys.exit(main())
