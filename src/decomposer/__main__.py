import sys

from decomposer.cli import main

sys.exit(main())
