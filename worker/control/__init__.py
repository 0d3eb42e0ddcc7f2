"""`app.control`: remote control and inspection of nodes, through the broker.

Celery's names and reply shapes: `broadcast` and the control commands return a list
of `{nodename: reply}` (None when no reply was asked for), `inspect()` methods a dict
`{nodename: reply}` (None when no node answered). The request reaches every node
alive by its heartbeat that shares the broker, on any host; a node that is down does
not answer within the timeout. Unlike Celery, a call returns as soon as every node it
was sent to has answered, instead of always waiting out the timeout.
"""

from __future__ import annotations

from qmulti.control.control import Control
from qmulti.control.inspect import Inspect

__all__ = ["Control", "Inspect"]
