"""`python -m skanse`."""

import sys

from skanse._cli import main

if __name__ == "__main__":
    sys.exit(main())
