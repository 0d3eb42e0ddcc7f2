"""Helpers with Celery's module names (`qmulti.utils.log`)."""
