"""Benchmarks of qmulti against Celery 5 (`python -m bench`); not tests, never run in CI.

The figures decide design questions (round trips per task, process hops, batching), so
they are measured in one run, on one private broker, against Celery on the same
machine: absolute numbers on a shared 2-core box mean little, ratios mean more.
"""
