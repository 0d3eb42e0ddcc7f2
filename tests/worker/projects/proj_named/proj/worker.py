"""A module named like our own runtime's folder: it must not shadow anything."""

import os


def describe():
    return f"proj.worker in {os.getpid()}"
