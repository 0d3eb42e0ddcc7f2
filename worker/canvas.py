"""Celery's canvas: signatures, groups, chains, chords, map/starmap/chunks.

`Signature`, `group` and the maps live in `canvas_base`, `chain` and `chord` in
`canvas_chain`, and how a canvas becomes messages in `canvas_plan`; this module puts
them under Celery's module name, so `from qmulti.canvas import chain` works as
`from celery.canvas import chain` does.
"""

from __future__ import annotations

import qmulti.canvas_plan  # noqa: F401 - registers the send hook that groups use
from qmulti.canvas_base import (
    MAP_TASK,
    STARMAP_TASK,
    Signature,
    group,
    maybe_signature,
    signature,
    subtask,
    xmap,
    xstarmap,
)
from qmulti.canvas_chain import chain, chord
from qmulti.canvas_chunks import chunks

__all__ = ["MAP_TASK", "STARMAP_TASK", "Signature", "chain", "chord", "chunks", "group",
           "maybe_signature", "signature", "subtask", "xmap", "xstarmap"]
