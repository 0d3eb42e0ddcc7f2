"""`qmulti call NAME [--args JSON] [--kwargs JSON] [--queue Q] [--countdown S]`: send a
task by name (this process need not know it) and print its id."""

from __future__ import annotations

from qmulti.exceptions import UsageError
from qmulti.supervisor import ctlargs


def run(argv: list[str]) -> int:
    p = ctlargs.parser("call", "Send a task by name; prints its id.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-a", "--args", help="positional arguments, a JSON list: '[2, 2]'")
    p.add_argument("-k", "--kwargs", help="keyword arguments, a JSON object: '{\"x\": 1}'")
    p.add_argument("-Q", "--queue", help="the queue (default: the app's routing)")
    p.add_argument("--countdown", type=float, help="run no sooner than S seconds from now")
    p.add_argument("--expires", type=float, help="revoked if not begun within S seconds")
    args = p.parse_args(argv)
    call_args = ctlargs.load_json(args.args, "--args", list)
    call_kwargs = ctlargs.load_json(args.kwargs, "--kwargs", dict)
    if args.countdown is not None and args.countdown < 0:
        raise UsageError("--countdown cannot be negative")
    app = ctlargs.make_app(args)
    result = app.send_task(args.name, call_args, call_kwargs, queue=args.queue,
                           countdown=args.countdown, expires=args.expires)
    print(result.id)
    return 0
