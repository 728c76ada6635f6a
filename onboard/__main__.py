import sys

from onboard.cli import main

sys.exit(main())
