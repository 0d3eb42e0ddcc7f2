"""The smallest Django settings with one app and a SQLite database beside manage.py."""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS: list[str] = []
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "notes",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

# Celery's settings, in Django style: CELERY_ prefix, upper case.
CELERY_BROKER_URL = "sqlite:///broker.sqlite3"
CELERY_RESULT_BACKEND = "db+sqlite:///results.sqlite3"
CELERY_TASK_SERIALIZER = "json"
CELERY_WORKER_HEARTBEAT_INTERVAL = 0.5
# Not a Celery name: the namespace keeps it out of the app's settings.
BROKER_URL = "redis://not-used:1/0"
