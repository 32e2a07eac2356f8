import sys

from decomposer.cli.app import main

sys.exit(main())
