"""Drill: hostile input straight into the broker, interleaved with good tasks.

The contract says a malformed body is dead-lettered by the consumer with a reason and
the node stays up. Here 1,000 hostile messages (bad JSON, non-object JSON, unknown
tasks, 2 MB payloads, pickle that is not accepted and would run code if it were
unpickled, wrong types in every field, missing ids, invalid UTF-8, deep nesting) go in
with 200 good `add` tasks, published with the store API so that no producer-side check
filters them. Every good task must complete with the right result; every bad one must be
dead-lettered or stored as FAILURE, with a log line; nothing stays queued or leased; the
node's main process and its pool children are the same at the end as at the start.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import random
import re
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from drill_support import Node, Project, envelope, result_doc, write_tasks

from helpers import wait_for
from redis_server import RedisServer

BAD = 1000
GOOD = 200
HUGE = 4  # 2 MB messages: a few are enough to prove the point, many would only be slow


class _Pwn:
    """A pickle that would create a file if any node ever unpickled it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.path}",))


def _hostile(kind: int, pwned: Path) -> tuple[bytes, str | None]:
    """One hostile body and the task id a FAILURE may be stored under (None: unreadable)."""
    tid = str(uuid.uuid4())

    def env(**kw: Any) -> bytes:
        doc = envelope(tid, "tasks.add", [1, 2])
        doc.update(kw)
        return json.dumps(doc).encode()

    choices: list[tuple[bytes, str | None]] = [
        (b"{not json", None),
        (b"", None),
        (b"\xff\xfe\x00garbage", None),
        (b"[1, 2, 3]", None),
        (b'"a string"', None),
        (b"null", None),
        (json.dumps(envelope(tid, "tasks.nope", [1])).encode(), tid),
        (json.dumps(envelope(tid, "os.system", ["touch " + str(pwned)])).encode(), tid),
        (env(ct="pickle", payload=base64.b64encode(
            pickle.dumps(((_Pwn(str(pwned)),), {}))).decode()), tid),
        (env(ct="yaml"), tid),
        (env(payload=["not a list", {}]), tid),
        (env(payload=[[1, 2], "not a dict"]), tid),
        (env(payload=[[1, 2]]), tid),
        (env(payload="x"), tid),
        (env(task=42), tid),
        (env(task=None), tid),
        (env(id=7), None),
        (json.dumps({k: v for k, v in envelope(tid, "tasks.add", [1, 2]).items()
                     if k != "id"}).encode(), None),
        (json.dumps({k: v for k, v in envelope(tid, "tasks.add", [1, 2]).items()
                     if k != "task"}).encode(), tid),
        (env(eta="soon"), tid),
        (env(expires="later"), tid),
        (env(retries="many"), tid),
        (env(options="not a dict"), tid),
        (env(options={"time_limit": "forever"}), tid),
        (env(payload=[[1], {}]), tid),  # wrong arity: the task itself raises TypeError
        (env(payload=[["a", 1], {}]), tid),  # str + int: the task raises TypeError
        (b"[" * 100_000 + b"]" * 100_000, None),  # deep nesting
        (json.dumps(envelope(tid, "tasks.add", [[[[[[[[[[1]]]]]]]]]] * 1000)).encode(), tid),
    ]
    return choices[kind % len(choices)]


@pytest.mark.timeout(150)
def test_hostile_messages_are_dead_lettered_and_the_node_stays_up(tmp_path: Path) -> None:
    from qmulti.brokers.redis import RedisStore

    project = Project.make(tmp_path / "proj")
    pwned = tmp_path / "pwned"
    rng = random.Random(7)
    with RedisServer(tmp_path) as server:
        write_tasks(project.path, server.url)
        store = RedisStore(server.url)
        node = Node(project, "-A", "tasks", "-c", "2", "-n", "hostile@%h", "-l", "info")
        try:
            node.wait_ready()
            main = psutil.Process(node.proc.pid)
            children = {c.pid for c in main.children()}
            assert len(children) == 2

            good: dict[str, int] = {}
            bad_mids: dict[str, str | None] = {}
            kinds = list(range(BAD))
            rng.shuffle(kinds)
            plan = ["good"] * GOOD + kinds
            rng.shuffle(plan)
            plan[rng.randrange(len(plan)):0] = ["huge"] * HUGE
            began = time.monotonic()
            for item in plan:
                mid = uuid.uuid4().hex
                if item == "good":
                    tid = str(uuid.uuid4())
                    x, y = rng.randrange(10**6), rng.randrange(10**6)
                    good[tid] = x + y
                    body = json.dumps(envelope(tid, "tasks.add", [x, y])).encode()
                elif item == "huge":
                    tid = str(uuid.uuid4())
                    body = json.dumps(envelope(tid, "tasks.nope", ["x" * 2_000_000])).encode()
                    bad_mids[mid] = tid
                else:
                    body, maybe_tid = _hostile(int(item), pwned)
                    bad_mids[mid] = maybe_tid
                store.publish("celery", mid, body)
            published = time.monotonic() - began

            def settled() -> bool:
                st = store.stats()
                return (sum(st.queues.values()) == 0 and st.leased == 0 and st.scheduled == 0
                        and all(result_doc(store, t) and result_doc(store, t)["status"]
                                == "SUCCESS" for t in good))

            try:
                wait_for(settled, 60, "every message handled", interval=0.5)
            except AssertionError as exc:
                lines = node.log().splitlines()
                notable = [ln for ln in lines if "Pool child" in ln or "Traceback" in ln
                           or "rror" in ln and "dead-lettered" not in ln
                           and "raised TypeError" not in ln]
                raise AssertionError(f"{exc}; {store.stats()}; log ({len(lines)} lines):\n"
                                     + "\n".join(notable[:40])) from None
            drained = time.monotonic() - began

            wrong = {t: result_doc(store, t) for t in good}
            wrong = {t: d for t, d in wrong.items() if d is None or d["result"] != good[t]}
            assert not wrong, f"{len(wrong)} good task(s) with a wrong result: {list(wrong)[:3]}"

            dead = {d.mid: d.reason for d in store.dead_letters(limit=10 * BAD)}
            failed = 0
            unaccounted = []
            for mid, tid in bad_mids.items():
                doc = result_doc(store, tid) if tid else None
                if doc is not None and doc["status"] == "FAILURE":
                    failed += 1
                elif mid not in dead:
                    unaccounted.append((mid, tid))
            assert not unaccounted, f"bad message(s) neither dead-lettered nor FAILURE: " \
                                    f"{unaccounted[:5]}"
            stray_dead = set(dead) - set(bad_mids)
            assert not stray_dead, f"good message(s) dead-lettered: {list(stray_dead)[:3]}"

            log = node.log()
            rejected_lines = len(re.findall(r"dead-lettered|raised TypeError", log))
            assert node.proc.poll() is None, f"node exited:\n{log[-3000:]}"
            now = {c.pid for c in main.children()}
            assert now == children, f"pool children changed: {children} -> {now}"
            deaths = [ln for ln in log.splitlines() if "Pool child" in ln
                      and ("crashed" in ln or "killed" in ln or "exited" in ln)]
            assert not deaths, "pool child death(s):\n" + "\n".join(deaths[:10])
            assert "Traceback" not in log or "crashed" not in log
            assert rejected_lines >= len(bad_mids), (
                f"only {rejected_lines} rejection log lines for {len(bad_mids)} bad messages")
            assert not pwned.exists(), "a hostile message ran code on the node"
            print(f"\nhostile drill: good={len(good)} bad={len(bad_mids)} (huge={HUGE}) "
                  f"dead-lettered={len(dead)} failure-results={failed} "
                  f"log-lines={rejected_lines} published-in={published:.1f}s "
                  f"handled-in={drained:.1f}s node-pid={main.pid} children={sorted(children)}")
        finally:
            node.close()
            project.kill_all()
