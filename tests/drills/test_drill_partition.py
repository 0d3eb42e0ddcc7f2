"""Drill: a node's link to Redis is cut for 20 s, in a network namespace the test makes.

The stall drill (test_drill_stall.py) with a network fault instead of SIGSTOP: w1 runs
inside its own network namespace, reaching the private redis-server over a veth pair;
the host end is set down for 20 s while w1 runs a task and holds four prefetched ones,
then up again. Same outcome asserted: 0 lost, each prefetched task ran once, the
running one at most twice, results final and never back at STARTED, w1 logged that it
was reaped. Skipped (with the reason) where network namespaces cannot be made.
"""

from __future__ import annotations

import random
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from drill_support import Node, Project
from test_drill_stall import stall_drill

from redis_server import RedisServer

CUT = 20.0


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@contextmanager
def namespace() -> Iterator[tuple[str, str, str]]:
    """(namespace, host-side veth, host address); the node side is .2 of a /30."""
    tag = uuid.uuid4().hex[:6]
    ns, host, peer = f"qm{tag}", f"qmh{tag}", f"qmn{tag}"
    net = f"10.{random.randrange(200, 250)}.{random.randrange(256)}"
    try:
        _ip("netns", "add", ns)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"cannot create a network namespace here: {detail.decode().strip() or exc}")
    try:
        _ip("link", "add", host, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", ns)
        _ip("addr", "add", f"{net}.1/30", "dev", host)
        _ip("link", "set", host, "up")
        for args in (("addr", "add", f"{net}.2/30", "dev", peer), ("link", "set", peer, "up"),
                     ("link", "set", "lo", "up")):
            _ip("netns", "exec", ns, "ip", *args)
        yield ns, host, f"{net}.1"
    finally:
        subprocess.run(["ip", "link", "del", host], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


@pytest.mark.timeout(170)
def test_partition_on_redis(tmp_path: Path) -> None:
    from qmulti.brokers.redis import RedisStore

    with namespace() as (ns, host, address):

        def partition(_: Node) -> Callable[[], None]:
            _ip("link", "set", host, "down")
            return lambda: _ip("link", "set", host, "up")

        with RedisServer(tmp_path, also_bind=(address,)) as server:
            stall_drill(Project.make(tmp_path / "proj"), server.url,
                        lambda: RedisStore(server.url), fault=partition, hold=CUT,
                        w1_url=f"redis://{address}:{server.port}/0",
                        w1_prefix=("ip", "netns", "exec", ns))
