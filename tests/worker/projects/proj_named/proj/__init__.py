# The layout Celery's docs suggest: the package makes sure its app is loaded.
from .celery import app as celery_app

__all__ = ("celery_app",)
