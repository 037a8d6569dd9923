"""``python -m kfserving_operator``: the command line."""

import sys

from kfserving_operator.cli import main

sys.exit(main())
