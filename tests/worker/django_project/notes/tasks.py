"""Tasks of a reusable Django app: `@shared_task`, no project import."""

import os

from django.db import connection

from qmulti import shared_task

from .models import Note


@shared_task
def add_note(text):
    note = Note.objects.create(text=text, pid=os.getpid())
    return note.pk


@shared_task
def connection_was_closed():
    """True when the connection the previous task opened was closed before this one."""
    return connection.connection is None


@shared_task
def count_notes():
    return Note.objects.count()
