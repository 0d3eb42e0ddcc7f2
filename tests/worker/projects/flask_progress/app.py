"""A Flask app with a long task that reports its progress, as the public "Flask +
Celery progress bar" examples do, with `celery` renamed to `qmulti`: the web process
starts the task and a status endpoint reports PROGRESS (current, total) until SUCCESS.
The node is started with `qworker -A app.celery` (module `app`, attribute `celery`)."""

import os
import time

from flask import Flask, jsonify, request, url_for

from qmulti import Celery

app = Flask(__name__)
app.config["SECRET_KEY"] = "not-a-secret"
app.config["CELERY_BROKER_URL"] = os.environ["PROGRESS_BROKER"]
app.config["CELERY_RESULT_BACKEND"] = os.environ["PROGRESS_BROKER"]

celery = Celery(app.name, broker=app.config["CELERY_BROKER_URL"])
celery.conf.update(app.config)

STEPS = ("warming up", "counting", "checking", "polishing")


@celery.task(bind=True)
def long_task(self, total, pause):
    """Sleeps through `total` steps, telling the backend where it is after each."""
    for i in range(total):
        self.update_state(state="PROGRESS", meta={
            "current": i, "total": total, "status": STEPS[i % len(STEPS)]})
        time.sleep(pause)
    return {"current": total, "total": total, "status": "done", "result": 42}


@app.route("/longtask", methods=["POST"])
def longtask():
    body = request.get_json(silent=True) or {}
    task = long_task.apply_async(args=(int(body.get("total", 10)),
                                       float(body.get("pause", 1.0))))
    return jsonify({}), 202, {"Location": url_for("taskstatus", task_id=task.id)}


@app.route("/status/<task_id>")
def taskstatus(task_id):
    task = long_task.AsyncResult(task_id)
    state, info = task.state, task.info
    if state == "PENDING":
        response = {"state": state, "current": 0, "total": 1, "status": "pending"}
    elif state == "FAILURE":
        response = {"state": state, "current": 1, "total": 1, "status": str(info)}
    else:
        info = info if isinstance(info, dict) else {}
        response = {"state": state, "current": info.get("current", 0),
                    "total": info.get("total", 1), "status": info.get("status", "")}
        if "result" in info:
            response["result"] = info["result"]
    return jsonify(response)
