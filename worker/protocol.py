"""The wire format: one JSON envelope per message, one JSON document per result.

Brokers and backends store these bytes without looking inside; only producers
(`Task.apply_async`), pool children and `AsyncResult` encode or decode them, so the
format can evolve in one place. The envelope is always JSON so that any node can read
the headers (id, task, eta) of a message whose payload it will refuse (pickle not
accepted); the payload is inline JSON, or base64 pickle when the user opted in.
"""

from __future__ import annotations

import base64
import builtins
import importlib
import json
import os
import pickle
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qmulti.exceptions import ContentDisallowed, MalformedMessage, SerializationError

VERSION = 1
CONTENT_TYPES = {
    # Celery users write either the short name or the MIME type in accept_content.
    "json": "json",
    "application/json": "json",
    "pickle": "pickle",
    "application/x-python-serialize": "pickle",
}


# uuid4 bits: clear the version nibble and the variant's top two bits, then set version
# 4 and variant RFC 4122, exactly as `uuid.UUID(bytes=..., version=4)` does.
_UUID4_CLEAR = ~((0xF << 76) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_SET = (4 << 76) | (0x8000 << 48)


def new_id() -> str:
    """A task or message id: uuid4 text, so ids look like Celery's to users.

    Formatted from 16 random bytes without building a `uuid.UUID`, which costs twice as
    much and is on the path of every `delay()`; the text is the same (version 4, RFC
    4122 variant, lower-case hex, 8-4-4-4-12)."""
    n = int.from_bytes(os.urandom(16), "big") & _UUID4_CLEAR | _UUID4_SET
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def normalize_content_type(name: str) -> str:
    """Map `json`/`application/json`/... to our short name; unknown names are a config error."""
    try:
        return CONTENT_TYPES[name.lower()]
    except KeyError:
        known = ", ".join(sorted({"json", "pickle"}))
        raise SerializationError(f"unknown serializer {name!r}; use one of: {known}") from None


def accepted(names: Iterable[str]) -> frozenset[str]:
    """The set of short content types a node will decode."""
    return frozenset(normalize_content_type(n) for n in names)


@dataclass(frozen=True)
class Envelope:
    """One task message as producers send it and pool children decode it."""

    id: str
    task: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str = "celery"
    eta: float | None = None  # unix time; None means now
    expires: float | None = None  # unix time after which the task is REVOKED, never run
    retries: int = 0
    mid: str = field(default_factory=new_id)  # unique per publish; the broker's key
    ct: str = "json"
    options: Mapping[str, Any] = field(default_factory=dict)  # time limits etc.
    root_id: str | None = None  # absent: this task is its own root
    parent_id: str | None = None  # the task that sent this one


# One encoder for every message: `json.dumps` with options builds a new one per call.
# JSONEncoder keeps no state between `encode` calls, so sharing it is thread-safe.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def encode_envelope(env: Envelope) -> bytes:
    """Encode for the broker; a non-JSON argument is a SerializationError at delay() time."""
    return encode_message(env.mid, env.id, env.task, list(env.args), dict(env.kwargs),
                          env.queue, env.eta, env.expires, env.retries, env.ct, env.options,
                          env.root_id, env.parent_id)


def encode_message(mid: str, task_id: str, task: str, args: Sequence[Any],
                   kwargs: Mapping[str, Any], queue: str, eta: float | None,
                   expires: float | None, retries: int, ct: str,
                   options: Mapping[str, Any] | None, root_id: str | None = None,
                   parent_id: str | None = None) -> bytes:
    """`encode_envelope` without building an `Envelope` first: the producer's hot path.

    Same bytes for the same fields; `args` may be a list or a tuple (both are a JSON
    array) and `kwargs` must be a plain dict when `ct` is json."""
    if ct == "json":
        payload: Any = [args, kwargs]
    elif ct == "pickle":
        payload = base64.b64encode(pickle.dumps((tuple(args), dict(kwargs)))).decode()
    else:
        raise SerializationError(f"unknown serializer {ct!r}; use json or pickle")
    doc = {
        "v": VERSION, "mid": mid, "id": task_id, "task": task, "ct": ct,
        "payload": payload, "queue": queue, "eta": eta, "expires": expires,
        "retries": retries,
    }
    if options:
        doc["options"] = dict(options)
    if parent_id is not None:  # sent by a running task: the tree it belongs to
        doc["root_id"] = root_id
        doc["parent_id"] = parent_id
    try:
        return _ENCODER.encode(doc).encode()
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"arguments of {task} are not JSON-serializable ({exc}); pass plain "
            "JSON values (str, int, float, bool, None, list, dict) or opt in to pickle"
        ) from None


def decode_envelope(body: bytes, accept: frozenset[str]) -> Envelope:
    """Decode a broker message; raises only MalformedMessage or ContentDisallowed."""
    try:
        doc = json.loads(body)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        ct = doc.get("ct", "json")
        task = doc["task"]
        task_id = doc["id"]
        if not isinstance(task, str) or not isinstance(task_id, str):
            raise ValueError("task and id must be strings")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedMessage(f"cannot decode message: {exc}") from None
    if ct not in accept:
        raise ContentDisallowed(
            f"message {task_id} uses content type {ct!r}, which accept_content does not allow"
        )
    try:
        if ct == "json":
            args, kwargs = doc["payload"]
        elif ct == "pickle":
            args, kwargs = pickle.loads(base64.b64decode(doc["payload"]))
        else:
            raise ValueError(f"unknown content type {ct!r}")
        if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
            raise ValueError("payload must be [args, kwargs]")
        return Envelope(
            id=task_id, task=task, args=tuple(args), kwargs=kwargs,
            queue=str(doc.get("queue") or "celery"), eta=_opt_float(doc.get("eta")),
            expires=_opt_float(doc.get("expires")), retries=int(doc.get("retries") or 0),
            mid=str(doc.get("mid") or task_id), ct=ct, options=doc.get("options") or {},
            root_id=_opt_str(doc.get("root_id")), parent_id=_opt_str(doc.get("parent_id")),
        )
    except Exception as exc:  # pickle can raise anything; all of it means "malformed"
        raise MalformedMessage(f"cannot decode message {task_id}: {exc!r}") from None


def peek_id(body: bytes) -> str | None:
    """The task id of a message, if it can be read at all (for dead-letter bookkeeping)."""
    try:
        doc = json.loads(body)
        return doc.get("id") if isinstance(doc, dict) and isinstance(doc.get("id"), str) else None
    except (ValueError, UnicodeDecodeError, RecursionError):  # nested too deeply
        return None


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


# ---- results -------------------------------------------------------------------------

def encode_result(task_id: str, status: str, result: Any = None, traceback: str | None = None,
                  retries: int = 0, node: str | None = None, ct: str = "json",
                  extended: Mapping[str, Any] | None = None) -> bytes:
    """One result document. Values that JSON cannot hold are stored as their repr, with a
    note, rather than losing the outcome of a task that already ran. `extended` (name,
    args, kwargs, worker, queue: `result_extended`) is stored alongside."""
    doc = {"task_id": task_id, "status": status, "result": result, "traceback": traceback,
           "date_done": time.time(), "retries": retries, "node": node}
    if extended:
        # repr for what JSON cannot hold (pickled arguments): the extras are for people
        doc.update(json.loads(json.dumps(dict(extended), default=repr)))
    if ct == "pickle":
        doc["result"] = base64.b64encode(pickle.dumps(result)).decode()
        doc["ct"] = "pickle"
    try:
        return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError):
        doc["result"] = {"exc_type": "EncodeError", "exc_module": "qmulti.exceptions",
                         "exc_message": [f"result is not JSON-serializable: {result!r}"[:2000]]}
        doc["status"] = "FAILURE" if status == "SUCCESS" else status
        return json.dumps(doc, separators=(",", ":"), default=repr).encode()


def decode_result(blob: bytes, accept: frozenset[str] = frozenset({"json"})) -> dict[str, Any]:
    """The result document as a dict; pickle results only when the caller accepts pickle."""
    doc = json.loads(blob)
    if doc.get("ct") == "pickle":
        if "pickle" not in accept:
            raise ContentDisallowed("result is pickled but accept_content does not allow pickle")
        doc["result"] = pickle.loads(base64.b64decode(doc["result"]))
    return doc


def exception_to_dict(exc: BaseException) -> dict[str, Any]:
    """What the caller needs to rebuild the exception: its type's name and module, its args."""
    args: list[Any] = []
    for arg in exc.args:
        try:
            json.dumps(arg)
            args.append(arg)
        except (TypeError, ValueError):
            args.append(repr(arg))
    cls = type(exc)
    return {"exc_type": cls.__qualname__, "exc_module": cls.__module__, "exc_message": args}


def exception_from_dict(info: Mapping[str, Any]) -> BaseException:
    """Rebuild a task's exception in the caller.

    When the original class cannot be imported or constructed here, an exception of a
    new class with the same name (subclassing Exception) carries the original message, so
    `except ZeroDivisionError` still works for builtins and the name is never lost.
    """
    name = str(info.get("exc_type") or "Exception")
    module = str(info.get("exc_module") or "builtins")
    args = info.get("exc_message") or []
    if not isinstance(args, (list, tuple)):
        args = [args]
    cls: Any = None
    try:
        mod = builtins if module == "builtins" else importlib.import_module(module)
        cls = mod
        for part in name.split("."):
            cls = getattr(cls, part)
    except Exception:
        cls = None
    if isinstance(cls, type) and issubclass(cls, BaseException):
        try:
            return cls(*args)
        except Exception:
            pass
    fallback = type(name.rsplit(".", 1)[-1], (Exception,), {"__module__": module})
    return fallback(*args)
