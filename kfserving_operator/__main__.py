from kfserving_operator.cli import main
import sys

sys.exit(main())
