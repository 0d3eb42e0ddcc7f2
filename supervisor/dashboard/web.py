"""The dashboard's HTTP side: pages, the JSON API, the event stream, /metrics, actions.

Flask, because it is small, maintained by the Pallets team for over a decade, needs
only Werkzeug, Jinja and two tiny helpers, and its threaded Werkzeug server streams a
response as it is produced, which is all server-sent events need: each open page is
one thread waiting on the collector's condition variable, woken once a tick.

Every page is one HTML shell (static/index.html) and one script that renders the
page it is told, from /api/snapshot and then from each /api/stream event; nothing
is loaded from outside the package.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

from flask import Flask, Response, abort, jsonify, redirect, request

from qmulti.supervisor.dashboard import metrics
from qmulti.supervisor.dashboard.actions import ActionError, Actions
from qmulti.supervisor.dashboard.security import CSRF_FIELD, CSRF_HEADER, Guard

PAGES = ("nodes", "queues", "charts", "tasks", "dead", "scheduled")
STREAM_KEEPALIVE = 15.0  # seconds between comments on an idle stream (proxies drop it)


def create_app(collector: Any, actions: Actions, guard: Guard) -> Flask:
    static = resources.files("qmulti.supervisor.dashboard") / "static"
    web = Flask("qmulti.dashboard", static_folder=str(static), static_url_path="/static")
    shell = (static / "index.html").read_text(encoding="utf-8")
    registry = metrics.registry_for(collector)

    def page(name: str, task_id: str = "") -> Response:
        body = (shell.replace("__PAGE__", name).replace("__CSRF__", guard.csrf)
                .replace("__TASK__", html.escape(task_id, quote=True)))
        return Response(body, mimetype="text/html")

    @web.before_request
    def _gate() -> Any:
        header = request.headers.get("Authorization")
        if request.method == "POST":
            if not guard.may_act(header):
                return _unauthorized(guard, "actions need --auth credentials on this "
                                            "address" if guard.auth is None else
                                     "credentials needed")
            token = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD)
            if not guard.csrf_ok(token):
                return jsonify(ok=False, error="missing or wrong CSRF token; reload the "
                                               "page"), 403
            return None
        if not guard.may_look(header):
            return _unauthorized(guard, "credentials needed")
        return None

    @web.after_request
    def _headers(resp: Response) -> Response:
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data:; "
                                                   "frame-ancestors 'none'")
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    @web.get("/")
    def _root() -> Any:
        return redirect("/nodes")

    @web.get("/<name>")
    def _page(name: str) -> Response:
        if name not in PAGES:
            abort(404)
        return page(name)

    @web.get("/tasks/<task_id>")
    def _task_page(task_id: str) -> Response:
        return page("task", task_id)

    # -- reading ---------------------------------------------------------------------------
    @web.get("/api/snapshot")
    def _snapshot() -> Response:
        return jsonify(collector.snapshot())

    @web.get("/api/history")
    def _history() -> Response:
        return jsonify(list(collector.history))

    @web.get("/api/<part>")
    def _part(part: str) -> Response:
        snap = collector.snapshot()
        if part not in ("nodes", "queues", "dead", "scheduled", "periodic", "totals"):
            abort(404)
        return jsonify(snap.get(part, []))

    @web.get("/api/tasks")
    def _tasks() -> Response:
        limit = min(max(request.args.get("limit", 100, type=int) or 100, 1), 1000)
        return jsonify(collector.tasks.search(request.args.get("q", ""),
                                              request.args.get("state", ""), limit))

    @web.get("/api/tasks/<task_id>")
    def _task(task_id: str) -> Any:
        row = collector.tasks.get(task_id)
        try:
            stored = actions.result(task_id)
        except ActionError as exc:
            return jsonify(ok=False, error=str(exc)), 502
        if row is None and stored is None:
            return jsonify(ok=False, error=f"no task {task_id} known"), 404
        return jsonify(task=row, result=stored)

    @web.get("/api/stream")
    def _stream() -> Response:
        def events() -> Iterator[str]:
            version = -1
            yield "retry: 2000\n\n"
            while not collector.stopped:
                snap = collector.wait_newer(version, STREAM_KEEPALIVE)
                if snap["version"] == version:
                    yield ": idle\n\n"
                    continue
                version = snap["version"]
                yield f"event: snapshot\ndata: {json.dumps(snap, separators=(',', ':'))}\n\n"

        resp = Response(events(), mimetype="text/event-stream")
        resp.headers["Cache-Control"] = "no-cache"
        resp.headers["X-Accel-Buffering"] = "no"
        return resp

    @web.get("/metrics")
    def _metrics() -> Response:
        return Response(metrics.render(registry),
                        mimetype="text/plain; version=0.0.4; charset=utf-8")

    # -- acting ----------------------------------------------------------------------------
    def _do(fn: Any, *args: Any) -> Any:
        try:
            return jsonify(ok=True, message=fn(*args))
        except ActionError as exc:
            return jsonify(ok=False, error=str(exc)), 409

    @web.post("/api/nodes/<name>/<action>")
    def _node_action(name: str, action: str) -> Any:
        n = _body().get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool):
            return jsonify(ok=False, error="n must be a whole number"), 400
        return _do(actions.node, name, action, n)

    @web.post("/api/tasks/<task_id>/revoke")
    def _revoke(task_id: str) -> Any:
        return _do(actions.revoke, task_id, bool(_body().get("terminate")))

    @web.post("/api/dead/<queue>/<mid>/<action>")
    def _dead(queue: str, mid: str, action: str) -> Any:
        return _do(actions.dead_letter, queue, mid, action)

    return web


def _body() -> dict[str, Any]:
    doc = request.get_json(silent=True)
    if isinstance(doc, dict):
        return doc
    return {k: v for k, v in request.form.items()}


def _unauthorized(guard: Guard, why: str) -> Response:
    resp = jsonify(ok=False, error=why)
    resp.status_code = 401
    if guard.auth is not None:
        resp.headers["WWW-Authenticate"] = 'Basic realm="qmulti dashboard", charset="UTF-8"'
    return resp
