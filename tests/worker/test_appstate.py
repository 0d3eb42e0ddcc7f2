"""current_app and shared_task across several apps in one process."""

from __future__ import annotations

from qmulti import App, current_app, shared_task


def test_shared_task_reaches_every_app_even_beside_a_misconfigured_one() -> None:
    broken = App("broken", broker="memory://", set_as_current=False)
    broken.conf.task_annotations = {"*": {"rate_limit": "fast"}}  # wrong for that app only
    good = App("good", broker="memory://")

    @shared_task
    def mul(x: int, y: int) -> int:
        return x * y

    name = f"{__name__}.test_shared_task_reaches_every_app_even_beside_a_misconfigured_one" \
           ".<locals>.mul"
    assert name in good.tasks
    assert current_app._get_current_object() is good
    assert mul(3, 4) == 12  # the proxy resolves to the current app's task
    late = App("late", broker="memory://")
    assert name in late.tasks  # apps made later get it too
    assert mul.app is late
    del broken
