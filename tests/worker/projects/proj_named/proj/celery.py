import os

from qmulti import Celery

app = Celery("proj", broker=os.environ["PROJ_BROKER"], include=["proj.tasks"])
app.conf.update(result_expires=3600)

if __name__ == "__main__":
    app.start()
