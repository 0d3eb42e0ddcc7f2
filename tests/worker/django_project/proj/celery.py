"""The project's task app, written as Celery's "First steps with Django" shows, with the
import renamed."""

import os

from qmulti import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")

app = Celery("proj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
