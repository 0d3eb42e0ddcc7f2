"""Vhosts on the machine's shared RabbitMQ through `rabbitmqctl eval` (the bench's
amqp section and tests/amqp both use it): one CLI call for many vhosts, since each call
boots an Erlang VM (a second or more of CPU)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterable

ACTOR = "qmulti-tests"
CLI_TIMEOUT = 60.0


def run_eval(code: str) -> str:
    """`rabbitmqctl eval`, in a process group of its own: a hung CLI VM (it holds one of
    the distribution ports 35672-35682 that the next call needs) is killed with it."""
    proc = subprocess.Popen(["rabbitmqctl", "eval", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=CLI_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RuntimeError(f"rabbitmqctl eval hung for {CLI_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"rabbitmqctl eval failed: {(err or out).strip()}")
    return out


def names_expr(names: Iterable[str]) -> str:
    return "[" + ", ".join(f'<<"{n}">>' for n in names) + "]"


def add_code(names: Iterable[str]) -> str:
    """Erlang that adds each vhost with every permission for guest."""
    return (f'[begin rabbit_vhost:add(V, <<"{ACTOR}">>), '
            f'rabbit_auth_backend_internal:set_permissions(<<"guest">>, V, <<".*">>, '
            f'<<".*">>, <<".*">>, <<"{ACTOR}">>) end || V <- {names_expr(names)}], ')


def add(names: Iterable[str]) -> None:
    run_eval(add_code(names) + "ok.")


def delete(names: Iterable[str]) -> None:
    names = list(names)
    if names:
        run_eval(f'[rabbit_vhost:delete(V, <<"{ACTOR}">>) || V <- {names_expr(names)}], ok.')
