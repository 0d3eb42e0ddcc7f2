"""`qworker`: parse the command line, validate, (detach), and run one node.

Errors are mapped to exit codes here and only here (worker/exitcodes.py): one line on
stderr saying what to do, the same line to a supervisor through sd_notify
(STATUS= then EXIT_STATUS=), and a traceback only at `-l debug`. With `--detach` every
check that can fail (the app, the broker URL and store path, the pidfile, the log
file) runs in the foreground first, so `qmulti start` and scripts see the real exit
code instead of a daemon dying out of sight.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from dataclasses import dataclass
from typing import Any, NoReturn

import click

from qmulti.exceptions import ConfigError, QmultiError, UsageError
from qmulti.node import compat, logs
from qmulti.node import events as node_events
from qmulti.node.mainloop import ENV_REEXEC
from qmulti.node.preflight import (
    check_log_files,
    check_pidfile,
    drop_privileges,
    validate_broker,
)
from qmulti.system import exitcodes, startsignals
from qmulti.system.notify import Notifier
from qmulti.urls import mask_url

POOLS = ("prefork", "solo", "threads", *compat.UNSUPPORTED_POOLS)
DEFAULT_PIDFILE = "%n.pid"  # qmulti's default too: `qmulti stop` finds a detached node by it


@dataclass
class Args:
    """The command line as given, before merging with the app's configuration."""

    app: str | None = None
    loglevel: str = "WARNING"
    concurrency: int | None = None
    hostname: str | None = None
    queues: str | None = None
    pool: str = "prefork"
    max_tasks_per_child: int | None = None
    max_memory_per_child: int | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    prefetch_multiplier: int | None = None
    pidfile: str | None = None
    logfile: str | None = None
    detach: bool = False
    uid: str | None = None
    gid: str | None = None
    workdir: str | None = None
    settings: tuple[str, ...] = ()  # NAME=VALUE words after `--`, Celery's command-line config
    # Celery's flags (worker/node/compat.py)
    task_events: bool = False
    beat: bool = False
    autoscale: str | None = None
    optimization: str | None = None
    purge: bool = False
    exclude_queues: str | None = None
    statedb: str | None = None
    without_gossip: bool = False
    without_mingle: bool = False
    without_heartbeat: bool = False


def _positive(kind: type) -> Any:
    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None and value <= 0:
            raise click.BadParameter(f"must be greater than 0, got {value}")
        return value

    return check


@click.command(name="qworker", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-A", "--app", help="the app: module, module:attribute or package")
@click.option("-l", "--loglevel", default="WARNING", show_default=True,
              help="debug, info, warning, error or critical")
@click.option("-c", "--concurrency", type=int, callback=_positive(int),
              help="pool children [default: number of CPUs]")
@click.option("-n", "--hostname", help="node name, NAME@%h [default: celery@%h]")
@click.option("-Q", "--queues", help="comma-separated queues [default: celery]")
@click.option("-P", "--pool", type=click.Choice(POOLS, case_sensitive=False),
              default="prefork", show_default=True)
@click.option("--max-tasks-per-child", type=int, callback=_positive(int))
@click.option("--max-memory-per-child", type=int, callback=_positive(int),
              help="KiB of resident memory after which a child is replaced")
@click.option("--time-limit", type=float, callback=_positive(float))
@click.option("--soft-time-limit", type=float, callback=_positive(float))
@click.option("--prefetch-multiplier", type=int, callback=_positive(int))
@click.option("--pidfile", help="pidfile path (%n %h %d expanded)")
@click.option("-f", "--logfile", help="log file path (%n %h %d %i %I expanded)")
@click.option("-D", "--detach", is_flag=True, help="run in the background")
@click.option("--uid", help="user to run as (name or id)")
@click.option("--gid", help="group to run as (name or id)")
@compat.options
@click.option("--workdir", help="directory to change to before loading the app")
@click.argument("settings", nargs=-1)
def _command(**values: Any) -> Args:
    return Args(**values)


def parse_args(argv: list[str]) -> Args:
    """Parse argv; a usage error is raised as UsageError (exit 64, not click's 2)."""
    if argv[:1] == ["worker"]:  # `python -m proj.celery worker -l info`, Celery style
        argv = argv[1:]
    try:
        result = _command.main(argv, prog_name="qworker", standalone_mode=False)
    except click.exceptions.UsageError as exc:
        raise UsageError(f"{exc.format_message().rstrip('.')}; see qworker --help") from None
    except click.exceptions.Abort:
        raise UsageError("aborted") from None
    if isinstance(result, int):  # --help printed; click returns its exit code
        raise SystemExit(result)
    assert isinstance(result, Args)
    result.pool = result.pool.lower()
    # Words after `--` (as `qmulti ... -- NAME=VALUE` passes them on) are settings, as in
    # Celery; a stray word without `--` is a usage error, not a silent setting.
    after = argv[argv.index("--") + 1:] if "--" in argv else []
    stray = [w for w in result.settings if w not in after]
    bad = [w for w in result.settings if "=" not in w or w.startswith("=")]
    if stray or bad:
        word = (stray or bad)[0]
        raise UsageError(f"unexpected argument {word!r}: settings go after `--` as "
                         "NAME=VALUE; see qworker --help")
    compat.parse_autoscale(result.autoscale)  # a malformed value is a usage error now
    return result


def main(argv: list[str] | None = None, app: Any = None) -> NoReturn:
    """Console script `qworker` and `python -m qmulti`."""
    sys.exit(run(list(sys.argv[1:] if argv is None else argv), app))


def run(argv: list[str], app: Any = None) -> int:
    notifier = Notifier.from_env()
    debug = False
    try:
        args = parse_args(argv)
        level = logs.parse_level(args.loglevel)
        debug = level <= logging.DEBUG
        return _start(args, level, app, notifier)
    except UsageError as exc:
        return _fail(notifier, str(exc), exitcodes.EX_USAGE, debug)
    except ConfigError as exc:
        return _fail(notifier, str(exc), exitcodes.EX_CONFIG, debug)
    except QmultiError as exc:
        return _fail(notifier, str(exc), exitcodes.EX_FAILURE, debug)
    except KeyboardInterrupt:
        return _fail(notifier, "interrupted before the node started", exitcodes.EX_FAILURE,
                     debug)
    except Exception as exc:
        from qmulti.pidfiles import AlreadyRunning, PidfileError

        if isinstance(exc, AlreadyRunning):
            return _fail(notifier, str(exc), exitcodes.EX_FAILURE, debug)
        if isinstance(exc, PidfileError):
            return _fail(notifier, str(exc), exitcodes.EX_CONFIG, debug)
        return _fail(notifier, f"unexpected {type(exc).__name__}: {exc}", exitcodes.EX_FAILURE,
                     True)


def _fail(notifier: Notifier, message: str, code: int, with_traceback: bool) -> int:
    line = " ".join(message.split())  # one line, whatever the message held
    if with_traceback and sys.exc_info()[0] is not None:
        traceback.print_exc()
    logging.getLogger("qmulti").debug("exiting with %d: %s", code, line)
    if logging.getLogger().handlers and not _logs_to_stderr():
        logging.getLogger("qmulti").error("%s", line)
    print(f"qworker: error: {line}", file=sys.stderr, flush=True)
    notifier.fatal(line, code)
    return code


def _logs_to_stderr() -> bool:
    return any(getattr(h, "stream", None) is sys.stderr for h in logging.getLogger().handlers)


def _start(args: Args, level: int, app: Any, notifier: Notifier) -> int:
    compat.check_pool(args.pool)  # gevent patches the standard library before any import
    from qmulti.node.mainloop import Node

    if args.workdir:
        _chdir(args.workdir)
    if app is None:
        if not args.app:
            raise UsageError("missing -A/--app: name the module that defines your app, "
                             "for example qworker -A proj")
        from qmulti.node.loader import load_app

        app = load_app(args.app)
    else:
        app.import_default_modules()
    _apply_settings(app, args.settings)
    app.finalize()  # on_after_configure, on_after_finalize: before the options are read
    opts = build_options(args, level, app)
    validate_broker(app)
    app.middleware  # noqa: B018 - loads the `middleware` setting: a wrong one exits 78 here
    # --detach without --pidfile: qmulti's default, so the daemon can be found and stopped.
    pid_template = args.pidfile or (DEFAULT_PIDFILE if args.detach else None)
    pidfile_path = (os.path.expanduser(logs.expand_path(pid_template, opts.name))
                    if pid_template else None)
    logfile = (os.path.expanduser(logs.expand_path(args.logfile, opts.name))
               if args.logfile else None)
    # Every path is checked here, in the foreground, before detaching: a daemon that
    # fails on its pidfile or log file dies where nobody sees it.
    if args.logfile:
        check_log_files(args.logfile, opts)
    pidfile = None
    reexec = os.environ.pop(ENV_REEXEC, None) is not None
    if pidfile_path and not reexec:
        check_pidfile(pidfile_path)
    if args.detach and not reexec:
        _detach(logfile)
    if pidfile_path:
        from qmulti.pidfiles import Pidfile

        pidfile = Pidfile.adopt_from_env(pidfile_path) or Pidfile(pidfile_path).acquire()
    node = None
    try:
        logs.setup(opts.name, level, logfile)
        if args.uid or args.gid:
            drop_privileges(args.uid, args.gid)
        log = logging.getLogger("qmulti")
        log.info("qworker %s: broker %s, %s pool, concurrency %d, prefetch %d, queues %s, "
                 "%d task(s) registered", opts.name, mask_url(str(app.conf.broker_url or "")),
                 opts.pool, opts.concurrency, opts.prefetch, ",".join(opts.queues),
                 len(app.tasks))
        for line in compat.notes(args):
            log.info("%s", line)
        node = Node(app, opts, notifier, pidfile)
        if node_events.enabled(args, app):  # -E: before any child is forked
            node.events = node_events.install(app, node)
        embedded = None
        if args.beat:
            from qmulti.node.beat import Embedded

            embedded = Embedded(app, opts.name)  # a bad schedule: ConfigError, exit 78
            node.fork_guard = embedded.fork_guard
        app.middleware.emit("node_init", app, node)  # worker_init
        try:
            if embedded is not None:
                embedded.start()
            code = node.run()
        finally:
            if embedded is not None:
                embedded.stop()
            app.middleware.emit("node_shutdown", app, node)  # worker_shutdown
    finally:
        if pidfile is not None and not (node is not None and node.restart_requested):
            pidfile.release()
    if node.restart_requested:
        _reexec(pidfile)
    return code


def _reexec(pidfile: Any) -> NoReturn:
    """HUP: the same command line in the same pid, so new task code is imported; the
    pidfile's locked fd survives the exec and is adopted by the new image."""
    env = dict(os.environ)
    if pidfile is not None:
        env.update(pidfile.keep_across_exec())
    env[ENV_REEXEC] = "1"
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    # Blocked across the exec: the new image's entry point holds, then unblocks them,
    # so a TERM while it imports is a warm stop, not death by the signal.
    startsignals.block()
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)


def _chdir(path: str) -> None:
    try:
        os.chdir(os.path.expanduser(path))
    except OSError as exc:
        raise ConfigError(f"cannot change to --workdir {path}: {exc.strerror}") from None


def _apply_settings(app: Any, words: tuple[str, ...]) -> None:
    """`-- NAME=VALUE ...`: set app settings; a JSON value is read as JSON, else a string."""
    import json

    for word in words:
        name, _, text = word.partition("=")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        app.conf.update({name.replace(".", "_"): value})


def _detach(logfile: str | None) -> None:
    """Become a daemon, keeping the working directory (relative -A, sqlite:/// paths and
    pidfiles stay right) and NOTIFY_SOCKET (so READY=1 still reaches the starter)."""
    import daemon

    out = open(logfile or os.devnull, "a", encoding="utf-8")  # noqa: SIM115 - the daemon's
    context = daemon.DaemonContext(
        working_directory=os.getcwd(), umask=0o022, detach_process=True,
        stdout=out, stderr=out, signal_map={}, prevent_core=False)
    context.open()
    out.close()  # fds 1 and 2 are its dups now; keeping it would pin a rotated log's inode


def build_options(args: Args, level: int, app: Any) -> Any:
    """Merge the command line over the app's settings (the command line wins)."""
    from qmulti.node.mainloop import NodeOptions

    conf = app.conf

    def setting(name: str) -> Any:
        value = getattr(conf, name, None)
        return value if value not in (None, 0, "") else None

    concurrency = args.concurrency or setting("worker_concurrency") or os.cpu_count() or 1
    prefetch = args.prefetch_multiplier or setting("worker_prefetch_multiplier") or 4
    name = logs.expand_hostname(args.hostname or "celery@%h")
    if "@" not in name:
        name = f"celery@{name}"
    pool = args.pool
    if pool == "solo":
        concurrency = 1
    queues = compat.exclude(_queues(args.queues, setting("task_default_queue") or "celery"),
                            args.exclude_queues)
    autoscale = compat.parse_autoscale(args.autoscale)
    if autoscale is not None and pool == "prefork":
        concurrency = autoscale[1]  # grows from MIN under a backlog
    elif autoscale is not None:
        autoscale = None  # threads cannot be added and retired on demand
    if args.optimization == "fair" or (pool == "gevent" and not args.prefetch_multiplier):
        # fair (and gevent): no task waits behind a busy child or green thread; the rest
        # stay in the broker for whichever is free
        prefetch = 1
    return NodeOptions(
        name=name, queues=queues, concurrency=int(concurrency), pool=pool,
        prefetch=int(prefetch),
        max_tasks_per_child=args.max_tasks_per_child or setting("worker_max_tasks_per_child"),
        max_memory_per_child=(args.max_memory_per_child
                              or setting("worker_max_memory_per_child")),
        time_limit=args.time_limit or setting("task_time_limit"),
        soft_time_limit=args.soft_time_limit or setting("task_soft_time_limit"),
        loglevel=level, logfile=args.logfile,
        heartbeat_interval=float(setting("worker_heartbeat_interval") or 2.0),
        heartbeat_expiry=float(setting("worker_heartbeat_expiry") or 10.0),
        purge=args.purge, autoscale=autoscale,
    )


def _queues(text: str | None, default: str) -> tuple[str, ...]:
    if not text:
        return (default,)
    queues = tuple(dict.fromkeys(q.strip() for q in text.split(",") if q.strip()))
    if not queues:
        raise UsageError(f"-Q {text!r} names no queue; give a comma-separated list")
    return queues
