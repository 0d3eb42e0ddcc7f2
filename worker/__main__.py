"""`python -m qmulti ...` is `qworker ...` (qmulti launches nodes this way)."""

from qmulti.system import startsignals

if __name__ == "__main__":
    # Before the imports below (hundreds of ms): a TERM from now on is a warm stop.
    startsignals.hold(die_with_parent=True)
    from qmulti.node.cli import main

    main()
