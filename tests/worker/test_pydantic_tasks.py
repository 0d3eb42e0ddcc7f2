"""`@app.task(pydantic=True)` on a real node: dict arguments become models, a model
result is stored as plain data, a bad argument is the task's failure; without pydantic
the option is a clear error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from node_fixtures import NodeProcess, producer, write_tasks

pytest.importorskip("pydantic")
pytestmark = pytest.mark.timeout(90)

TASKS = '''
from pydantic import BaseModel


class Order(BaseModel):
    item: str
    qty: int


class Receipt(BaseModel):
    item: str
    total: float


@app.task(pydantic=True)
def buy(order: Order, price: float) -> Receipt:
    assert isinstance(order, Order)
    return Receipt(item=order.item, total=order.qty * price)


@app.task(pydantic=True, pydantic_strict=True)
def strict_buy(order: Order) -> Receipt:
    return Receipt(item=order.item, total=order.qty)


@app.task(bind=True, pydantic=True)
def bound(self, order: Order) -> str:
    return f"{self.name}:{type(order).__name__}"
'''


def test_pydantic_arguments_and_results_on_a_node(tmp_path: Path) -> None:
    write_tasks(tmp_path, extra_tasks=TASKS)
    app = producer(tmp_path)
    try:
        with NodeProcess(tmp_path, "-A", "tasks", "-c", "1") as node:
            node.wait_ready()
            ok = app.send_task("tasks.buy", ({"item": "pen", "qty": "3"}, 1.5))
            assert ok.get(timeout=30) == {"item": "pen", "total": 4.5}
            assert app.send_task("tasks.bound", ({"item": "a", "qty": 1},)).get(
                timeout=30) == "tasks.bound:Order"
            bad = app.send_task("tasks.buy", ({"item": "pen"}, 1.0))
            with pytest.raises(Exception) as err:
                bad.get(timeout=30)
            assert "ValidationError" in type(err.value).__name__ + repr(err.value)
            assert bad.state == "FAILURE"
            strict = app.send_task("tasks.strict_buy", ({"item": "pen", "qty": "3"},))
            with pytest.raises(Exception, match="qty"):
                strict.get(timeout=30)
            assert node.stop() == 0
    finally:
        app.close()


def test_direct_calls_convert_too(tmp_path: Path) -> None:
    write_tasks(tmp_path, extra_tasks=TASKS)
    code = ("import tasks\n"
            "print(tasks.buy({'item': 'cup', 'qty': 2}, 2.0))\n"
            "print(tasks.buy(tasks.Order(item='cup', qty=1), 3.0))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["{'item': 'cup', 'total': 4.0}",
                                        "{'item': 'cup', 'total': 3.0}"]


def test_without_pydantic_the_option_is_a_clear_error(tmp_path: Path) -> None:
    code = ("import sys\n"
            "sys.modules['pydantic'] = None  # as if it were not installed\n"
            "from qmulti import App, ConfigError\n"
            "app = App('p', broker='memory://')\n"
            "try:\n"
            "    @app.task(pydantic=True)\n"
            "    def f(x): return x\n"
            "except ConfigError as exc:\n"
            "    print('ConfigError:', exc)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("ConfigError: a task with pydantic=True needs pydantic: "
                                   "pip install 'qmulti[pydantic]'")
