"""The `qworker` runtime: command line, app loading, the main loop, the pool, its
children and the execution of one delivery. The API (`qmulti.app`, `qmulti.task`, ...)
never imports this package; the node imports the API.
"""
