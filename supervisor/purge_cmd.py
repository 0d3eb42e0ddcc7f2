"""`qmulti purge [-Q queues] [-X queues] [-f]`: delete the waiting messages of queues.

Only ready messages go: leased ones (prefetched or running on some node) and scheduled
ones (countdown/eta) stay. Asks first, showing how many would go, unless `-f`.
"""

from __future__ import annotations

import json
import sys

from qmulti.control.control import app_queues
from qmulti.exceptions import UsageError
from qmulti.supervisor import ctlargs


def _names(text: str | None) -> list[str]:
    return [q.strip() for q in (text or "").split(",") if q.strip()]


def run(argv: list[str]) -> int:
    p = ctlargs.parser("purge", "Delete the waiting messages of queues (leased and "
                                "scheduled ones stay).")
    p.add_argument("-Q", "--queues", help="these queues (default: the app's queues)")
    p.add_argument("-X", "--exclude-queues", help="leave these queues out")
    p.add_argument("-f", "--force", action="store_true", help="do not ask")
    p.add_argument("-j", "--json", action="store_true", help="print {queue: count}")
    args = p.parse_args(argv)
    if args.queues is not None and not _names(args.queues):
        raise UsageError("-Q needs queue names, for example -Q default,images")
    app = ctlargs.make_app(args)
    queues = _names(args.queues) or app_queues(app)
    queues = [q for q in queues if q not in set(_names(args.exclude_queues))]
    if not queues:
        raise UsageError("no queue left to purge after -X")
    broker = app.broker
    if not args.force:
        depth = broker.stats().queues
        waiting = sum(int(depth.get(q, 0)) for q in queues)
        print(f"Purge {waiting} waiting message(s) from {', '.join(queues)} on "
              f"{ctlargs.where(app)}? [y/N] ", end="", flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("qmulti purge: not confirmed; nothing purged (pass -f to purge without "
                  "asking)", file=sys.stderr)
            return 1
    counts = {q: broker.purge(q) for q in queues}
    if args.json:
        print(json.dumps(counts, indent=2, sort_keys=True))
    else:
        for line in ctlargs.table([("QUEUE", "PURGED")]
                                  + [(q, str(n)) for q, n in counts.items()]):
            print(line)
        print(f"purged {sum(counts.values())} message(s) from {len(counts)} queue(s)")
    return 0
