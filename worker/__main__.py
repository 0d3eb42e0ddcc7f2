"""`python -m qmulti ...` is `qworker ...` (qmulti launches nodes this way)."""

from qmulti.node.cli import main

if __name__ == "__main__":
    main()
