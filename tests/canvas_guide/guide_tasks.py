"""The tasks that Celery's canvas guide uses (`add`, `mul`, `tsum`, `log_error`, ...),
written for these tests, registered on any app by `define(app, journal)`.

The node imports this file (a copy in its directory) and the test process registers
the same tasks on its producer app, so `add.s(2, 2)` names what the node runs. Tasks
whose only effect is a side effect (callbacks, errbacks) append one JSON line to a
journal file shared by the node and the test, which the test polls.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from qmulti import Task


def note(journal: Path, **entry: Any) -> None:
    """One journal line; a single O_APPEND write, so lines of concurrent children do not
    interleave."""
    line = (json.dumps(entry, sort_keys=True, default=repr) + "\n").encode()
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_journal(journal: Path) -> list[dict[str, Any]]:
    if not journal.exists():
        return []
    return [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]


def define(app: Any, journal: Path) -> SimpleNamespace:
    """Register the guide's tasks on `app` under the guide's names (`tasks.add`, ...)."""

    @app.task(name="tasks.add")
    def add(x: Any, y: Any, debug: bool = False) -> Any:
        # With debug the call shows that the keyword reached it (the guide's
        # `s.delay(debug=True)  # -> add(2, 2, debug=True)`).
        return {"sum": x + y, "debug": True} if debug else x + y

    @app.task(name="tasks.mul")
    def mul(x: Any, y: Any) -> Any:
        return x * y

    @app.task(name="tasks.subtract")
    def subtract(x: Any, y: Any) -> Any:
        return x - y

    @app.task(name="tasks.tsum")
    def tsum(numbers: Any) -> Any:
        return sum(numbers)

    @app.task(name="tasks.echo")
    def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
        """What a call received: shows where partial arguments went."""
        return {"args": list(args), "kwargs": kwargs}

    @app.task(name="tasks.log_result")
    def log_result(value: Any, token: str) -> Any:
        note(journal, kind="result", token=token, value=value)
        return value

    @app.task(name="tasks.reset_buffers")
    def reset_buffers(*args: Any, token: str) -> str:
        note(journal, kind="reset", token=token, args=list(args))
        return "reset"

    @app.task(name="tasks.log_error")
    def log_error(request: Any, exc: BaseException, traceback: Any) -> None:
        """The guide's errback: called by the node with the failed task's request, its
        exception and traceback (not as a task of its own)."""
        note(journal, kind="errback", id=request.id, exc=type(exc).__name__, msg=str(exc),
             traceback=bool(traceback))

    @app.task(name="tasks.on_chord_error")
    def on_chord_error(request: Any, exc: BaseException, traceback: Any) -> None:
        note(journal, kind="chord_errback", id=request.id, exc=type(exc).__name__,
             msg=str(exc))

    @app.task(name="tasks.errback_by_id")
    def errback_by_id(task_id: str) -> str:
        """A one-argument errback: dispatched as a task with the failed task's id."""
        note(journal, kind="errback_id", id=task_id)
        return task_id

    @app.task(name="tasks.raising_task")
    def raising_task() -> None:
        raise ValueError("something something")

    @app.task(name="tasks.fail")
    def fail() -> None:
        raise ValueError("fail")

    @app.task(name="tasks.import_contact")
    def import_contact(contact: str) -> str:
        return contact.upper()

    @app.task(name="tasks.notify_complete")
    def notify_complete(import_id: str) -> str:
        # One parameter only: had the header's results been passed on, this would fail.
        return f"import {import_id} complete"

    @app.task(name="tasks.create_user")
    def create_user(username: str, first: str, last: str, email: str) -> str:
        return username

    @app.task(name="tasks.import_contacts")
    def import_contacts(user: str) -> str:
        return f"contacts of {user}"

    @app.task(name="tasks.send_welcome_email")
    def send_welcome_email(user: str) -> str:
        return f"welcome {user}"

    class ForgetfulTask(Task):  # type: ignore[misc]
        """Overrides after_return without calling super(): the guide warns that this
        breaks Celery's Redis chords; here the chord does not depend on it."""

        def after_return(self, *args: Any, **kwargs: Any) -> None:
            note(journal, kind="after_return")

    @app.task(name="tasks.forgetful_add", base=ForgetfulTask)
    def forgetful_add(x: Any, y: Any) -> Any:
        return x + y

    return SimpleNamespace(
        add=add, mul=mul, subtract=subtract, tsum=tsum, echo=echo, log_result=log_result,
        reset_buffers=reset_buffers, log_error=log_error, on_chord_error=on_chord_error,
        errback_by_id=errback_by_id, raising_task=raising_task, fail=fail,
        import_contact=import_contact, notify_complete=notify_complete,
        create_user=create_user, import_contacts=import_contacts,
        send_welcome_email=send_welcome_email, forgetful_add=forgetful_add)
