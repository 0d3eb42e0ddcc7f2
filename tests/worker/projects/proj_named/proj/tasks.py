from .celery import app
from .worker import describe


@app.task
def add(x, y):
    return x + y


@app.task
def where():
    return describe()
