"""`python -m worker ...` is `qworker ...` (qmulti launches nodes this way)."""

from worker.cli import main

if __name__ == "__main__":
    main()
