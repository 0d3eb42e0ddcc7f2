"""Celery-shaped helpers (qmulti.utils.log and friends)."""
