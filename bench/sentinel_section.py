"""Issue 17's bench: what `wait_replicas=1` costs, measured against no WAIT in one run.

A private master, one replica and three sentinels (bench/sentinel_proc.py); qmulti
connects through `sentinel://`. Per mode, alternating: enqueue N (each publish followed
by WAIT in the same round trip under wait_replicas), then a node at -c 2 drains them
with results stored (each finish followed by WAIT). Celery has no WAIT option to set
beside it, so the figure is our own ratio, with vs without.
"""

from __future__ import annotations

from pathlib import Path

from bench import drain, report
from bench.outcome import Outcome, Sizes
from bench.qmulti_side import QmultiSide
from bench.sentinel_proc import SentinelSet

MODES = ("plain", "wait")
_MSGS = "{qmulti:celery}:msgs"


class SentinelSide(QmultiSide):
    def __init__(self, root: Path, run_id: str, options: dict[str, object]) -> None:
        super().__init__(root, run_id)
        self.options = options

    def tasks_source(self, broker: str, backend: str | None) -> str:
        return (super().tasks_source(broker, backend)
                + f"\napp.conf.broker_transport_options = {self.options!r}\n")


def run(root: Path, run_id: str, sizes: Sizes) -> dict[str, Outcome]:
    cluster = SentinelSet(root / "sentinel", run_id).start()
    try:
        runs: dict[str, list[Outcome]] = {mode: [] for mode in MODES}
        for i in range(sizes.repeats):
            for mode in MODES if i % 2 == 0 else MODES[::-1]:
                runs[mode].append(_run_mode(root, run_id, cluster, mode, sizes))
        return {mode: report.best(outs) for mode, outs in runs.items()}
    finally:
        cluster.stop()


def _run_mode(root: Path, run_id: str, cluster: SentinelSet, mode: str,
              sizes: Sizes) -> Outcome:
    options: dict[str, object] = {"master_name": cluster.name}
    if mode == "wait":
        options.update(wait_replicas=1, wait_timeout_ms=1000)
    side = SentinelSide(root / "sentinel" / mode, run_id, options)
    master = cluster.master.client(0)
    cluster.master.flush()
    side.write_tasks(cluster.url, None)
    n = sizes.tasks
    return drain.enqueue_then_drain(side, sizes, lambda: n - int(master.hlen(_MSGS)))


def render(outs: dict[str, Outcome]) -> str:
    plain, wait = outs["plain"].figures, outs["wait"].figures
    lines = ["Redis under Sentinel (master + 1 replica + 3 sentinels), qmulti only, -c 2"]
    for key, what in (("drain", "drain, results stored"), ("enqueue", "enqueue")):
        a, b = plain.get(key), wait.get(key)
        if a is None or b is None:
            lines.append(f"  {what}: n/a")
            continue
        lines.append(f"  {what}: {a:,.0f} tasks/s without WAIT, {b:,.0f} with "
                     f"wait_replicas=1 ({b / a:.2f}x)")
    for mode, out in outs.items():
        lines += [f"  problem ({mode}): {e}" for e in out.errors]
    return "\n".join(lines)
