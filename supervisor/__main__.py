"""`python -m qmulti.supervisor ...` is `qmulti ...`."""

import sys

from qmulti.supervisor.entry import main

if __name__ == "__main__":
    sys.exit(main())
