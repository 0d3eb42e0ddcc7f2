"""`qmulti dashboard`: a web dashboard and Prometheus metrics, built in.

Imports nothing of the web stack here: `qmulti dashboard` without the `dashboard`
extra must still start far enough to say which install command to run.
"""
