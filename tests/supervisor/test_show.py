# ruff: noqa: E501
"""`names`, `show`, `expand` and `get` against what `celery multi` printed for the same line.

RECORDED holds, for each command line, the output of `celery multi` 5.7.0 (run in
a scratch virtualenv, host name `vm`, HOME=$HOME; PY stands for that venv's
python) and what `qmulti` prints (host name `vm`, HOME=/home/u). A reader sees
both; the test checks the qmulti half, exit status included, through the real
CLI entry point. Differences are deliberate (see supervisor/show.py and
supervisor/grammar.py docstrings): `qworker` for the program, `./` paths,
`-n/--pidfile/--logfile` last, traps turned into one-line usage errors (exit 2).
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from qmulti.supervisor import cli

RECORDED = r"""
### names 3
celery (exit 0):
    celery1@vm
    celery2@vm
    celery3@vm
qmulti (exit 0):
    celery1@vm
    celery2@vm
    celery3@vm
### names 1
celery (exit 0):
    celery1@vm
qmulti (exit 0):
    celery1@vm
### names w1 w2
celery (exit 0):
    w1@vm
    w2@vm
qmulti (exit 0):
    w1@vm
    w2@vm
### names w1@example.com w2
celery (exit 0):
    w1@example.com
    w2@vm
qmulti (exit 0):
    w1@example.com
    w2@vm
### names 3 --range-prefix=worker
celery (exit 0):
    worker1@vm
    worker2@vm
    worker3@vm
qmulti (exit 0):
    worker1@vm
    worker2@vm
    worker3@vm
### names 3 --range-prefix worker
celery (exit 0):
    3@vm
    worker@vm
qmulti (exit 0):
    worker1@vm
    worker2@vm
    worker3@vm
### names w1 w2 -n example.com
celery (exit 0):
    w1@example.com
    w2@example.com
qmulti (exit 0):
    w1@example.com
    w2@example.com
### names 3 --hostname=example.com
celery (exit 0):
    celery1@example.com
    celery2@example.com
    celery3@example.com
qmulti (exit 0):
    celery1@example.com
    celery2@example.com
    celery3@example.com
### names 2 --prefix=p
celery (exit 0):
    celery1@vm
    celery2@vm
qmulti (exit 0):
    celery1@vm
    celery2@vm
### names 2 --suffix=example.org
celery (exit 0):
    celery1@example.org
    celery2@example.org
qmulti (exit 0):
    celery1@example.org
    celery2@example.org
### names w1 w2 --prefix=x-
celery (exit 0):
    x-w1@vm
    x-w2@vm
qmulti (exit 0):
    x-w1@vm
    x-w2@vm
### names w1@%h w2
celery (exit 0):
    w1@vm
    w2@vm
qmulti (exit 0):
    w1@vm
    w2@vm
### names w1.%h
celery (exit 0):
    w1.vm@vm
qmulti (exit 0):
    w1.vm@vm
### names w1@host.example.com
celery (exit 0):
    w1@host.example.com
qmulti (exit 0):
    w1@host.example.com
### names 3 -A tasks -l info
celery (exit 0):
    celery1@vm
    celery2@vm
    celery3@vm
qmulti (exit 0):
    celery1@vm
    celery2@vm
    celery3@vm
### names w1 w2 --loglevel info
celery (exit 0):
    w1@vm
    w2@vm
    info@vm
qmulti (exit 0):
    w1@vm
    w2@vm
### names 0
celery (exit 0):
    (nothing)
qmulti (exit 2):
    stderr: qmulti names: node count must be at least 1, got 0
### names w1-w3
celery (exit 0):
    w1-w3@vm
qmulti (exit 0):
    w1-w3@vm
### names 3 --
celery (exit 0):
    celery1@vm
    celery2@vm
    celery3@vm
qmulti (exit 0):
    celery1@vm
    celery2@vm
    celery3@vm
### names 3 -- -c 3
celery (exit 0):
    celery1@vm
    celery2@vm
    celery3@vm
qmulti (exit 0):
    celery1@vm
    celery2@vm
    celery3@vm
### names w1 w1
celery (exit 0):
    w1@vm
    w1@vm
qmulti (exit 2):
    stderr: qmulti names: node w1@vm is given twice
### names 2 -n
celery (exit 0):
    celery1@None
    celery2@None
qmulti (exit 2):
    stderr: qmulti names: -n needs a value, as in -n VALUE
### expand %h 3
celery (exit 0):
    celery1@vm
    celery2@vm
    celery3@vm
qmulti (exit 0):
    celery1@vm
    celery2@vm
    celery3@vm
### expand %n 3
celery (exit 0):
    celery1
    celery2
    celery3
qmulti (exit 0):
    celery1
    celery2
    celery3
### expand %d 3
celery (exit 0):
    vm
    vm
    vm
qmulti (exit 0):
    vm
    vm
    vm
### expand %i%I w1
celery (exit 0):
    %i%I
qmulti (exit 0):
    %i%I
### expand %p w1@host.example.com
celery (exit 0):
    w1@host.example.com
qmulti (exit 0):
    w1@host.example.com
### expand %N w1@host.example.com
celery (exit 0):
    w1
qmulti (exit 0):
    w1
### expand %h/%n/%d w1@host.example.com
celery (exit 0):
    w1@host.example.com/w1/host.example.com
qmulti (exit 0):
    w1@host.example.com/w1/host.example.com
### expand %% w1
celery (exit 0):
    %
qmulti (exit 0):
    %
### expand %x w1
celery (exit 1):
    (traceback) ValueError: Unknown format %x
qmulti (exit 2):
    stderr: qmulti expand: unknown %x in template '%x': use %h %n %d %p %N %i %I (or %% for a literal %)
### expand /var/run/%n.pid w1 w2 --range-prefix=z
celery (exit 0):
    /var/run/w1.pid
    /var/run/w2.pid
qmulti (exit 0):
    /var/run/w1.pid
    /var/run/w2.pid
### expand %h 2 -n example.com
celery (exit 0):
    celery1@example.com
    celery2@example.com
qmulti (exit 0):
    celery1@example.com
    celery2@example.com
### show 3
celery (exit 0):
    PY -m celery worker --detach -n celery1@vm --pidfile=/var/run/celery/celery1.pid --logfile=/var/log/celery/celery1%I.log --executable=PY
    PY -m celery worker --detach -n celery2@vm --pidfile=/var/run/celery/celery2.pid --logfile=/var/log/celery/celery2%I.log --executable=PY
    PY -m celery worker --detach -n celery3@vm --pidfile=/var/run/celery/celery3.pid --logfile=/var/log/celery/celery3%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -n celery1@vm --pidfile=celery1.pid --logfile=celery1%I.log
    qworker --detach -n celery2@vm --pidfile=celery2.pid --logfile=celery2%I.log
    qworker --detach -n celery3@vm --pidfile=celery3.pid --logfile=celery3%I.log
### show 3 -A tasks -l info
celery (exit 0):
    PY -m celery -A tasks worker --detach -l info -n celery1@vm --pidfile=/var/run/celery/celery1.pid --logfile=/var/log/celery/celery1%I.log --executable=PY
    PY -m celery -A tasks worker --detach -l info -n celery2@vm --pidfile=/var/run/celery/celery2.pid --logfile=/var/log/celery/celery2%I.log --executable=PY
    PY -m celery -A tasks worker --detach -l info -n celery3@vm --pidfile=/var/run/celery/celery3.pid --logfile=/var/log/celery/celery3%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -A tasks -l info -n celery1@vm --pidfile=celery1.pid --logfile=celery1%I.log
    qworker --detach -A tasks -l info -n celery2@vm --pidfile=celery2.pid --logfile=celery2%I.log
    qworker --detach -A tasks -l info -n celery3@vm --pidfile=celery3.pid --logfile=celery3%I.log
### show w1 w2 -A tasks -c 3
celery (exit 0):
    PY -m celery -A tasks worker --detach -c 3 -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery -A tasks worker --detach -c 3 -n w2@vm --pidfile=/var/run/celery/w2.pid --logfile=/var/log/celery/w2%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -A tasks -c 3 -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
    qworker --detach -A tasks -c 3 -n w2@vm --pidfile=w2.pid --logfile=w2%I.log
### show w1@example.com -A tasks
celery (exit 0):
    PY -m celery -A tasks worker --detach -n w1@example.com --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -A tasks -n w1@example.com --pidfile=w1.pid --logfile=w1%I.log
### show 3 -c:1-2 4 -c 2
celery (exit 0):
    PY -m celery worker --detach -c 4 -n celery1@vm --pidfile=/var/run/celery/celery1.pid --logfile=/var/log/celery/celery1%I.log --executable=PY
    PY -m celery worker --detach -c 4 -n celery2@vm --pidfile=/var/run/celery/celery2.pid --logfile=/var/log/celery/celery2%I.log --executable=PY
    PY -m celery worker --detach -c 2 -n celery3@vm --pidfile=/var/run/celery/celery3.pid --logfile=/var/log/celery/celery3%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -c 4 -n celery1@vm --pidfile=celery1.pid --logfile=celery1%I.log
    qworker --detach -c 4 -n celery2@vm --pidfile=celery2.pid --logfile=celery2%I.log
    qworker --detach -c 2 -n celery3@vm --pidfile=celery3.pid --logfile=celery3%I.log
### show 3 -c 2 -c:2-3 5
celery (exit 0):
    PY -m celery worker --detach -c 2 -n celery1@vm --pidfile=/var/run/celery/celery1.pid --logfile=/var/log/celery/celery1%I.log --executable=PY
    PY -m celery worker --detach -c 5 -n celery2@vm --pidfile=/var/run/celery/celery2.pid --logfile=/var/log/celery/celery2%I.log --executable=PY
    PY -m celery worker --detach -c 5 -n celery3@vm --pidfile=/var/run/celery/celery3.pid --logfile=/var/log/celery/celery3%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -c 2 -n celery1@vm --pidfile=celery1.pid --logfile=celery1%I.log
    qworker --detach -c 5 -n celery2@vm --pidfile=celery2.pid --logfile=celery2%I.log
    qworker --detach -c 5 -n celery3@vm --pidfile=celery3.pid --logfile=celery3%I.log
### show w1 w2 w3 -c:w1 8
celery (exit 0):
    PY -m celery worker --detach -c 8 -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery worker --detach -n w2@vm --pidfile=/var/run/celery/w2.pid --logfile=/var/log/celery/w2%I.log --executable=PY
    PY -m celery worker --detach -n w3@vm --pidfile=/var/run/celery/w3.pid --logfile=/var/log/celery/w3%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -c 8 -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
    qworker --detach -n w2@vm --pidfile=w2.pid --logfile=w2%I.log
    qworker --detach -n w3@vm --pidfile=w3.pid --logfile=w3%I.log
### show w1 w2 w3 -c:1 8
celery (exit 0):
    PY -m celery worker --detach -c 8 -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery worker --detach -n w2@vm --pidfile=/var/run/celery/w2.pid --logfile=/var/log/celery/w2%I.log --executable=PY
    PY -m celery worker --detach -n w3@vm --pidfile=/var/run/celery/w3.pid --logfile=/var/log/celery/w3%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -c 8 -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
    qworker --detach -n w2@vm --pidfile=w2.pid --logfile=w2%I.log
    qworker --detach -n w3@vm --pidfile=w3.pid --logfile=w3%I.log
### show w1 w2 w3 -c:1,3 8
celery (exit 0):
    PY -m celery worker --detach -c 8 -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery worker --detach -n w2@vm --pidfile=/var/run/celery/w2.pid --logfile=/var/log/celery/w2%I.log --executable=PY
    PY -m celery worker --detach -c 8 -n w3@vm --pidfile=/var/run/celery/w3.pid --logfile=/var/log/celery/w3%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -c 8 -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
    qworker --detach -n w2@vm --pidfile=w2.pid --logfile=w2%I.log
    qworker --detach -c 8 -n w3@vm --pidfile=w3.pid --logfile=w3%I.log
### show 3 -c:1,3 8
celery (exit 0):
    PY -m celery worker --detach -c 8 -n celery1@vm --pidfile=/var/run/celery/celery1.pid --logfile=/var/log/celery/celery1%I.log --executable=PY
    PY -m celery worker --detach -n celery2@vm --pidfile=/var/run/celery/celery2.pid --logfile=/var/log/celery/celery2%I.log --executable=PY
    PY -m celery worker --detach -c 8 -n celery3@vm --pidfile=/var/run/celery/celery3.pid --logfile=/var/log/celery/celery3%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -c 8 -n celery1@vm --pidfile=celery1.pid --logfile=celery1%I.log
    qworker --detach -n celery2@vm --pidfile=celery2.pid --logfile=celery2%I.log
    qworker --detach -c 8 -n celery3@vm --pidfile=celery3.pid --logfile=celery3%I.log
### show w1 w2 w3 -c:1-2 8
celery (exit 0):
    PY -m celery worker --detach -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery worker --detach -n w2@vm --pidfile=/var/run/celery/w2.pid --logfile=/var/log/celery/w2%I.log --executable=PY
    PY -m celery worker --detach -n w3@vm --pidfile=/var/run/celery/w3.pid --logfile=/var/log/celery/w3%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -c 8 -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
    qworker --detach -c 8 -n w2@vm --pidfile=w2.pid --logfile=w2%I.log
    qworker --detach -n w3@vm --pidfile=w3.pid --logfile=w3%I.log
### show 3 -Q:1 images -Q default
celery (exit 0):
    PY -m celery worker --detach -Q images -n celery1@vm --pidfile=/var/run/celery/celery1.pid --logfile=/var/log/celery/celery1%I.log --executable=PY
    PY -m celery worker --detach -Q default -n celery2@vm --pidfile=/var/run/celery/celery2.pid --logfile=/var/log/celery/celery2%I.log --executable=PY
    PY -m celery worker --detach -Q default -n celery3@vm --pidfile=/var/run/celery/celery3.pid --logfile=/var/log/celery/celery3%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -Q images -n celery1@vm --pidfile=celery1.pid --logfile=celery1%I.log
    qworker --detach -Q default -n celery2@vm --pidfile=celery2.pid --logfile=celery2%I.log
    qworker --detach -Q default -n celery3@vm --pidfile=celery3.pid --logfile=celery3%I.log
### show 3 -Q:1 images -Q:2-3 default
celery (exit 0):
    PY -m celery worker --detach -Q images -n celery1@vm --pidfile=/var/run/celery/celery1.pid --logfile=/var/log/celery/celery1%I.log --executable=PY
    PY -m celery worker --detach -Q default -n celery2@vm --pidfile=/var/run/celery/celery2.pid --logfile=/var/log/celery/celery2%I.log --executable=PY
    PY -m celery worker --detach -Q default -n celery3@vm --pidfile=/var/run/celery/celery3.pid --logfile=/var/log/celery/celery3%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -Q images -n celery1@vm --pidfile=celery1.pid --logfile=celery1%I.log
    qworker --detach -Q default -n celery2@vm --pidfile=celery2.pid --logfile=celery2%I.log
    qworker --detach -Q default -n celery3@vm --pidfile=celery3.pid --logfile=celery3%I.log
### show w1 w2 --pidfile=run/%n.pid --logfile=log/%n%I.log
celery (exit 0):
    PY -m celery worker --detach --pidfile=run/w1.pid --logfile=log/w1%I.log -n w1@vm --executable=PY
    PY -m celery worker --detach --pidfile=run/w2.pid --logfile=log/w2%I.log -n w2@vm --executable=PY
qmulti (exit 0):
    qworker --detach -n w1@vm --pidfile=run/w1.pid --logfile=log/w1%I.log
    qworker --detach -n w2@vm --pidfile=run/w2.pid --logfile=log/w2%I.log
### show w1 --pidfile=%h.pid --logfile=%d/%n-%i.log
celery (exit 0):
    PY -m celery worker --detach --pidfile=w1@vm.pid --logfile=vm/w1-%i.log -n w1@vm --executable=PY
qmulti (exit 0):
    qworker --detach -n w1@vm --pidfile=w1@vm.pid --logfile=vm/w1-%i.log
### show w1 w2 --pidfile=run/%n.pid -p:w2 other/%n.pid
celery (exit 0):
    PY -m celery worker --detach --pidfile=run/w1.pid -n w1@vm --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery worker --detach --pidfile=run/w2.pid -p other/w2.pid -n w2@vm --logfile=/var/log/celery/w2%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -n w1@vm --pidfile=run/w1.pid --logfile=w1%I.log
    qworker --detach -n w2@vm --pidfile=other/w2.pid --logfile=w2%I.log
### show w1 w2 --logfile:w2=special.log
celery (exit 0):
    PY -m celery worker --detach -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery worker --detach --logfile=special.log -n w2@vm --pidfile=/var/run/celery/w2.pid --executable=PY
qmulti (exit 0):
    qworker --detach -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
    qworker --detach -n w2@vm --pidfile=w2.pid --logfile=special.log
### show w1 w2 -f %n.log
celery (exit 0):
    PY -m celery worker --detach -f w1.log -n w1@vm --pidfile=/var/run/celery/w1.pid --executable=PY
    PY -m celery worker --detach -f w2.log -n w2@vm --pidfile=/var/run/celery/w2.pid --executable=PY
qmulti (exit 0):
    qworker --detach -n w1@vm --pidfile=w1.pid --logfile=w1.log
    qworker --detach -n w2@vm --pidfile=w2.pid --logfile=w2.log
### show 2 -A tasks -- --purge -x
celery (exit 0):
    PY -m celery -A tasks worker --detach -n celery1@vm --pidfile=/var/run/celery/celery1.pid --logfile=/var/log/celery/celery1%I.log --executable=PY -- --purge -x
    PY -m celery -A tasks worker --detach -n celery2@vm --pidfile=/var/run/celery/celery2.pid --logfile=/var/log/celery/celery2%I.log --executable=PY -- --purge -x
qmulti (exit 0):
    qworker --detach -A tasks -n celery1@vm --pidfile=celery1.pid --logfile=celery1%I.log --purge -x
    qworker --detach -A tasks -n celery2@vm --pidfile=celery2.pid --logfile=celery2%I.log --purge -x
### show 2 -- -A tasks
celery (exit 0):
    PY -m celery worker --detach -n celery1@vm --pidfile=/var/run/celery/celery1.pid --logfile=/var/log/celery/celery1%I.log --executable=PY -- -A tasks
    PY -m celery worker --detach -n celery2@vm --pidfile=/var/run/celery/celery2.pid --logfile=/var/log/celery/celery2%I.log --executable=PY -- -A tasks
qmulti (exit 0):
    qworker --detach -n celery1@vm --pidfile=celery1.pid --logfile=celery1%I.log -A tasks
    qworker --detach -n celery2@vm --pidfile=celery2.pid --logfile=celery2%I.log -A tasks
### show w1 w2 --loglevel info
celery (exit 0):
    PY -m celery worker --detach --loglevel -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery worker --detach --loglevel -n w2@vm --pidfile=/var/run/celery/w2.pid --logfile=/var/log/celery/w2%I.log --executable=PY
    PY -m celery worker --detach --loglevel -n info@vm --pidfile=/var/run/celery/info.pid --logfile=/var/log/celery/info%I.log --executable=PY
qmulti (exit 0):
    qworker --detach --loglevel=info -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
    qworker --detach --loglevel=info -n w2@vm --pidfile=w2.pid --logfile=w2%I.log
### show w1 w2 --loglevel=info
celery (exit 0):
    PY -m celery worker --detach --loglevel=info -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery worker --detach --loglevel=info -n w2@vm --pidfile=/var/run/celery/w2.pid --logfile=/var/log/celery/w2%I.log --executable=PY
qmulti (exit 0):
    qworker --detach --loglevel=info -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
    qworker --detach --loglevel=info -n w2@vm --pidfile=w2.pid --logfile=w2%I.log
### show w1 -l info -c 2 -Q a,b -P solo
celery (exit 0):
    PY -m celery worker --detach -l info -c 2 -Q a,b -P solo -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -l info -c 2 -Q a,b -P solo -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
### show w1 --max-tasks-per-child=10 --time-limit=30
celery (exit 0):
    PY -m celery worker --detach --max-tasks-per-child=10 --time-limit=30 -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
qmulti (exit 0):
    qworker --detach --max-tasks-per-child=10 --time-limit=30 -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
### show w1 -n foo
celery (exit 0):
    PY -m celery worker --detach -n w1@foo --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -n w1@foo --pidfile=w1.pid --logfile=w1%I.log
### show 3 --range-prefix=worker -c:2 9
celery (exit 0):
    PY -m celery worker --detach -n worker1@vm --pidfile=/var/run/celery/worker1.pid --logfile=/var/log/celery/worker1%I.log --executable=PY
    PY -m celery worker --detach -c 9 -n worker2@vm --pidfile=/var/run/celery/worker2.pid --logfile=/var/log/celery/worker2%I.log --executable=PY
    PY -m celery worker --detach -n worker3@vm --pidfile=/var/run/celery/worker3.pid --logfile=/var/log/celery/worker3%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -n worker1@vm --pidfile=worker1.pid --logfile=worker1%I.log
    qworker --detach -c 9 -n worker2@vm --pidfile=worker2.pid --logfile=worker2%I.log
    qworker --detach -n worker3@vm --pidfile=worker3.pid --logfile=worker3%I.log
### show w1 w2 -c:3 8
celery (exit 0):
    (usage text; "Invalid command: show" on stderr)
qmulti (exit 2):
    stderr: qmulti show: -c:3: index 3 is past the last node (2)
### show 3 -c:4 8
celery (exit 0):
    (usage text; "Invalid command: show" on stderr)
qmulti (exit 2):
    stderr: qmulti show: -c:4: index 4 is past the last node (3)
### show 3 -c:0 8
celery (exit 0):
    (usage text; "Invalid command: show" on stderr)
qmulti (exit 2):
    stderr: qmulti show: -c:0: bad range '0' (nodes are numbered from 1)
### show w1 w2 -c:4 8
celery (exit 0):
    (usage text; "Invalid command: show" on stderr)
qmulti (exit 2):
    stderr: qmulti show: -c:4: index 4 is past the last node (2)
### show w1 w2 -c:w9 8
celery (exit 0):
    PY -m celery worker --detach -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery worker --detach -n w2@vm --pidfile=/var/run/celery/w2.pid --logfile=/var/log/celery/w2%I.log --executable=PY
qmulti (exit 2):
    stderr: qmulti show: -c:w9: no node named 'w9' (nodes: w1@vm, w2@vm)
### show 3 -c:1-5 8
celery (exit 0):
    PY -m celery worker --detach -c 8 -n celery1@vm --pidfile=/var/run/celery/celery1.pid --logfile=/var/log/celery/celery1%I.log --executable=PY
    PY -m celery worker --detach -c 8 -n celery2@vm --pidfile=/var/run/celery/celery2.pid --logfile=/var/log/celery/celery2%I.log --executable=PY
    PY -m celery worker --detach -c 8 -n celery3@vm --pidfile=/var/run/celery/celery3.pid --logfile=/var/log/celery/celery3%I.log --executable=PY
qmulti (exit 2):
    stderr: qmulti show: -c:1-5: index 5 is past the last node (3)
### show 3 --detach
celery (exit 0):
    PY -m celery worker --detach --detach -n celery1@vm --pidfile=/var/run/celery/celery1.pid --logfile=/var/log/celery/celery1%I.log --executable=PY
    PY -m celery worker --detach --detach -n celery2@vm --pidfile=/var/run/celery/celery2.pid --logfile=/var/log/celery/celery2%I.log --executable=PY
    PY -m celery worker --detach --detach -n celery3@vm --pidfile=/var/run/celery/celery3.pid --logfile=/var/log/celery/celery3%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -n celery1@vm --pidfile=celery1.pid --logfile=celery1%I.log
    qworker --detach -n celery2@vm --pidfile=celery2.pid --logfile=celery2%I.log
    qworker --detach -n celery3@vm --pidfile=celery3.pid --logfile=celery3%I.log
### show w1 -b redis://:secret@localhost/0
celery (exit 0):
    PY -m celery -b redis://:secret@localhost/0 worker --detach -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
qmulti (exit 0):
    'QMULTI_BROKER_URL=redis://:***@localhost/0' qworker --detach -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
### show w1 -A tasks --workdir=~/x
celery (exit 0):
    PY -m celery --workdir=$HOME/x -A tasks worker --detach -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -A tasks --workdir=/home/u/x -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
### show w1 --pidfile=~/%n.pid
celery (exit 0):
    PY -m celery worker --detach --pidfile=$HOME/w1.pid -n w1@vm --logfile=/var/log/celery/w1%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -n w1@vm --pidfile=/home/u/w1.pid --logfile=w1%I.log
### show w1 -c
celery (exit 0):
    PY -m celery worker --detach -c -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
qmulti (exit 2):
    stderr: qmulti show: -c needs a value, as in -c VALUE
### show w1 -c:1
celery (exit 0):
    PY -m celery worker --detach -c -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
qmulti (exit 2):
    stderr: qmulti show: -c:1 needs a value, as in -c:1 VALUE
### show 2 -c:1- 4
celery (exit 1):
    (traceback) ValueError: invalid literal for int() with base 10: ''
qmulti (exit 2):
    stderr: qmulti show: -c:1-: bad range '1-' (write FIRST-LAST, as in 1-3)
### show 2 -c:a-b 4
celery (exit 1):
    (traceback) ValueError: invalid literal for int() with base 10: 'a'
qmulti (exit 2):
    stderr: qmulti show: -c:a-b: no node named 'a-b' (nodes: celery1@vm, celery2@vm)
### show w1 --executable=/usr/bin/python3
celery (exit 0):
    /usr/bin/python3 -m celery worker --detach --executable=/usr/bin/python3 -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log
qmulti (exit 0):
    /usr/bin/python3 -m qmulti --detach -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
### show w1 --foo bar
celery (exit 0):
    PY -m celery worker --detach --foo -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery worker --detach --foo -n bar@vm --pidfile=/var/run/celery/bar.pid --logfile=/var/log/celery/bar%I.log --executable=PY
qmulti (exit 0):
    qworker --detach --foo -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
    qworker --detach --foo -n bar@vm --pidfile=bar.pid --logfile=bar%I.log
### show w1 -x y z
celery (exit 0):
    PY -m celery worker --detach -x y -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery worker --detach -x y -n z@vm --pidfile=/var/run/celery/z.pid --logfile=/var/log/celery/z%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -x y -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
    qworker --detach -x y -n z@vm --pidfile=z.pid --logfile=z%I.log
### get w1 w1 w2 -c 3
celery (exit 0):
    (nothing)
qmulti (exit 0):
    --detach -c 3 -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
### get w2@vm w1 w2 -c:2 5
celery (exit 0):
    -m celery worker --detach -c 5 -n w2@vm --pidfile=/var/run/celery/w2.pid --logfile=/var/log/celery/w2%I.log --executable=PY
qmulti (exit 0):
    --detach -c 5 -n w2@vm --pidfile=w2.pid --logfile=w2%I.log
### get w3 w1 w2
celery (exit 0):
    (nothing)
qmulti (exit 1):
    stderr: qmulti get: no node named 'w3' among w1@vm, w2@vm
### get celery2@vm 3 -A tasks
celery (exit 0):
    -m celery -A tasks worker --detach -n celery2@vm --pidfile=/var/run/celery/celery2.pid --logfile=/var/log/celery/celery2%I.log --executable=PY
qmulti (exit 0):
    --detach -A tasks -n celery2@vm --pidfile=celery2.pid --logfile=celery2%I.log
### get celery2 3 -A tasks
celery (exit 0):
    (nothing)
qmulti (exit 0):
    --detach -A tasks -n celery2@vm --pidfile=celery2.pid --logfile=celery2%I.log
### expand %h
celery (exit 0):
    (nothing)
qmulti (exit 2):
    stderr: qmulti expand: no nodes given: name them (w1 w2) or give a count (3)
### names
celery (exit 0):
    (nothing)
qmulti (exit 2):
    stderr: qmulti names: no nodes given: name them (w1 w2) or give a count (3)
### show
celery (exit 0):
    (nothing)
qmulti (exit 2):
    stderr: qmulti show: no nodes given: name them (w1 w2) or give a count (3)
### names 3 -n %h
celery (exit 0):
    celery1@vm
    celery2@vm
    celery3@vm
qmulti (exit 0):
    celery1@vm
    celery2@vm
    celery3@vm
### names 3 -n example.%h
celery (exit 0):
    celery1@example.vm
    celery2@example.vm
    celery3@example.vm
qmulti (exit 0):
    celery1@example.vm
    celery2@example.vm
    celery3@example.vm
### names 2 -n w%i@example.com
celery (exit 0):
    celery1@w0@example.com
    celery2@w0@example.com
qmulti (exit 2):
    stderr: qmulti names: -n 'w%i@example.com': give the host half only (nodes are named by the NODES arguments)
### names w1 w2 -n x.example.com
celery (exit 0):
    w1@x.example.com
    w2@x.example.com
qmulti (exit 0):
    w1@x.example.com
    w2@x.example.com
### names w1@a.com w2 -n b.com
celery (exit 0):
    w1@a.com
    w2@b.com
qmulti (exit 0):
    w1@a.com
    w2@b.com
### show w1 w2 -n x.example.com -c 2
celery (exit 0):
    PY -m celery worker --detach -c 2 -n w1@x.example.com --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery worker --detach -c 2 -n w2@x.example.com --pidfile=/var/run/celery/w2.pid --logfile=/var/log/celery/w2%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -c 2 -n w1@x.example.com --pidfile=w1.pid --logfile=w1%I.log
    qworker --detach -c 2 -n w2@x.example.com --pidfile=w2.pid --logfile=w2%I.log
### names 3 --suffix=""
celery (exit 0):
    celery1@vm
    celery2@vm
    celery3@vm
qmulti (exit 0):
    celery1@vm
    celery2@vm
    celery3@vm
### names 3 --suffix=''
celery (exit 0):
    celery1@vm
    celery2@vm
    celery3@vm
qmulti (exit 0):
    celery1@vm
    celery2@vm
    celery3@vm
### expand %h 3 --suffix=""
celery (exit 0):
    celery1@vm
    celery2@vm
    celery3@vm
qmulti (exit 0):
    celery1@vm
    celery2@vm
    celery3@vm
### names w1 w2 --prefix=p --suffix=s
celery (exit 0):
    pw1@s
    pw2@s
qmulti (exit 0):
    pw1@s
    pw2@s
### expand %n/%h/%d w1@a.b.c
celery (exit 0):
    w1/w1@a.b.c/a.b.c
qmulti (exit 0):
    w1/w1@a.b.c/a.b.c
### expand %N w1
celery (exit 0):
    w1
qmulti (exit 0):
    w1
### expand %i w1
celery (exit 0):
    %i
qmulti (exit 0):
    %i
### show w1 --logfile=%p.log
celery (exit 0):
    PY -m celery worker --detach --logfile=w1@vm.log -n w1@vm --pidfile=/var/run/celery/w1.pid --executable=PY
qmulti (exit 0):
    qworker --detach -n w1@vm --pidfile=w1.pid --logfile=w1@vm.log
### show w1 --pidfile=%N.pid
celery (exit 0):
    PY -m celery worker --detach --pidfile=w1.pid -n w1@vm --logfile=/var/log/celery/w1%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
### show w1 w2 -c:1 2 -c:w2 3
celery (exit 0):
    PY -m celery worker --detach -c 2 -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery worker --detach -c 3 -n w2@vm --pidfile=/var/run/celery/w2.pid --logfile=/var/log/celery/w2%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -c 2 -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
    qworker --detach -c 3 -n w2@vm --pidfile=w2.pid --logfile=w2%I.log
### show w1 w2 -c:w1@vm 3
celery (exit 0):
    PY -m celery worker --detach -c 3 -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery worker --detach -n w2@vm --pidfile=/var/run/celery/w2.pid --logfile=/var/log/celery/w2%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -c 3 -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
    qworker --detach -n w2@vm --pidfile=w2.pid --logfile=w2%I.log
### show w1@example.com w2 -c:w1@example.com 3
celery (exit 0):
    PY -m celery worker --detach -c 3 -n w1@example.com --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery worker --detach -n w2@vm --pidfile=/var/run/celery/w2.pid --logfile=/var/log/celery/w2%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -c 3 -n w1@example.com --pidfile=w1.pid --logfile=w1%I.log
    qworker --detach -n w2@vm --pidfile=w2.pid --logfile=w2%I.log
### show w1@example.com w2 -c:w1 3
celery (exit 0):
    PY -m celery worker --detach -c 3 -n w1@example.com --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery worker --detach -n w2@vm --pidfile=/var/run/celery/w2.pid --logfile=/var/log/celery/w2%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -c 3 -n w1@example.com --pidfile=w1.pid --logfile=w1%I.log
    qworker --detach -n w2@vm --pidfile=w2.pid --logfile=w2%I.log
### show 2 -c:celery2 7
celery (exit 0):
    PY -m celery worker --detach -n celery1@vm --pidfile=/var/run/celery/celery1.pid --logfile=/var/log/celery/celery1%I.log --executable=PY
    PY -m celery worker --detach -n celery2@vm --pidfile=/var/run/celery/celery2.pid --logfile=/var/log/celery/celery2%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -n celery1@vm --pidfile=celery1.pid --logfile=celery1%I.log
    qworker --detach -c 7 -n celery2@vm --pidfile=celery2.pid --logfile=celery2%I.log
### show 2 -c:1,2 7
celery (exit 0):
    PY -m celery worker --detach -c 7 -n celery1@vm --pidfile=/var/run/celery/celery1.pid --logfile=/var/log/celery/celery1%I.log --executable=PY
    PY -m celery worker --detach -c 7 -n celery2@vm --pidfile=/var/run/celery/celery2.pid --logfile=/var/log/celery/celery2%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -c 7 -n celery1@vm --pidfile=celery1.pid --logfile=celery1%I.log
    qworker --detach -c 7 -n celery2@vm --pidfile=celery2.pid --logfile=celery2%I.log
### show 4 -c:1-2,4 7
celery (exit 0):
    PY -m celery worker --detach -c 7 -n celery1@vm --pidfile=/var/run/celery/celery1.pid --logfile=/var/log/celery/celery1%I.log --executable=PY
    PY -m celery worker --detach -c 7 -n celery2@vm --pidfile=/var/run/celery/celery2.pid --logfile=/var/log/celery/celery2%I.log --executable=PY
    PY -m celery worker --detach -n celery3@vm --pidfile=/var/run/celery/celery3.pid --logfile=/var/log/celery/celery3%I.log --executable=PY
    PY -m celery worker --detach -c 7 -n celery4@vm --pidfile=/var/run/celery/celery4.pid --logfile=/var/log/celery/celery4%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -c 7 -n celery1@vm --pidfile=celery1.pid --logfile=celery1%I.log
    qworker --detach -c 7 -n celery2@vm --pidfile=celery2.pid --logfile=celery2%I.log
    qworker --detach -n celery3@vm --pidfile=celery3.pid --logfile=celery3%I.log
    qworker --detach -c 7 -n celery4@vm --pidfile=celery4.pid --logfile=celery4%I.log
### show w1 w2 --time-limit:2=30 --time-limit=10
celery (exit 0):
    PY -m celery worker --detach --time-limit=10 -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery worker --detach --time-limit=30 -n w2@vm --pidfile=/var/run/celery/w2.pid --logfile=/var/log/celery/w2%I.log --executable=PY
qmulti (exit 0):
    qworker --detach --time-limit=10 -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
    qworker --detach --time-limit=30 -n w2@vm --pidfile=w2.pid --logfile=w2%I.log
### show w1 -A tasks -- -c 3
celery (exit 0):
    PY -m celery -A tasks worker --detach -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY -- -c 3
qmulti (exit 0):
    qworker --detach -A tasks -n w1@vm --pidfile=w1.pid --logfile=w1%I.log -c 3
### show w1 -A proj.celery:app
celery (exit 0):
    PY -m celery -A proj.celery:app worker --detach -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -A proj.celery:app -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
### show w1 --app=tasks
celery (exit 0):
    PY -m celery --app=tasks worker --detach -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
qmulti (exit 0):
    qworker --detach --app=tasks -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
### show w1 --app tasks
celery (exit 0):
    PY -m celery --app worker --detach -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
    PY -m celery --app worker --detach -n tasks@vm --pidfile=/var/run/celery/tasks.pid --logfile=/var/log/celery/tasks%I.log --executable=PY
qmulti (exit 0):
    qworker --detach --app=tasks -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
### show w1 --quiet
celery (exit 0):
    PY -m celery worker --detach -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
### show w1 -q -A tasks
celery (exit 0):
    PY -m celery -A tasks worker --detach -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -A tasks -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
### show w1 --nosplash -A tasks
celery (exit 0):
    PY -m celery -A tasks worker --detach -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
qmulti (exit 0):
    qworker --detach -A tasks -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
### show w1 --append=X
celery (exit 0):
    PY -m celery worker --detach -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY  X
qmulti (exit 2):
    stderr: qmulti show: --append is a celery multi option that qmulti does not have
### show w1 --cmd=foo
celery (exit 1):
    (traceback) ValueError: 'celery' is not in list
qmulti (exit 2):
    stderr: qmulti show: --cmd is a celery multi option that qmulti does not have
### show w1 --without-heartbeat -l info
celery (exit 0):
    PY -m celery worker --detach --without-heartbeat -l info -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY
qmulti (exit 0):
    qworker --detach --without-heartbeat -l info -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
### get w1@%h w1@%h
celery (exit 0):
    (nothing)
qmulti (exit 0):
    --detach -n w1@vm --pidfile=w1.pid --logfile=w1%I.log
### names w1 -n a.com --hostname=b.com
celery (exit 0):
    w1@b.com
qmulti (exit 0):
    w1@b.com
### names w1 --hostname=b.com -n a.com
celery (exit 0):
    w1@b.com
qmulti (exit 0):
    w1@b.com
### show w1 --logfile=~/%n.log
celery (exit 0):
    PY -m celery worker --detach --logfile=$HOME/w1.log -n w1@vm --pidfile=/var/run/celery/w1.pid --executable=PY
qmulti (exit 0):
    qworker --detach -n w1@vm --pidfile=w1.pid --logfile=/home/u/w1.log
### show w1 -A tasks -- -c 3 -- x=1
celery (exit 0):
    PY -m celery -A tasks worker --detach -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY -- -c 3 -- x=1
qmulti (exit 0):
    qworker --detach -A tasks -n w1@vm --pidfile=w1.pid --logfile=w1%I.log -c 3 -- x=1
### show w1 --help
celery (exit 0):
    (usage text)
qmulti (exit 0):
    (usage text)
### names w1 w2 --help
celery (exit 0):
    (usage text)
qmulti (exit 0):
    (usage text)
### get w1 --help
celery (exit 0):
    (usage text)
qmulti (exit 0):
    (usage text)
### show w1 -A tasks -- --help
celery (exit 0):
    PY -m celery -A tasks worker --detach -n w1@vm --pidfile=/var/run/celery/w1.pid --logfile=/var/log/celery/w1%I.log --executable=PY -- --help
qmulti (exit 0):
    qworker --detach -A tasks -n w1@vm --pidfile=w1.pid --logfile=w1%I.log --help
### expand %h/%x w1
celery (exit 1):
    (traceback) ValueError: Unknown format %x
qmulti (exit 2):
    stderr: qmulti expand: unknown %x in template '%h/%x': use %h %n %d %p %N %i %I (or %% for a literal %)
### show w1 --pidfile=%x.pid
celery (exit 1):
    (traceback) ValueError: Unknown format %x
qmulti (exit 2):
    stderr: qmulti show: unknown %x in --pidfile '%x.pid': use %h %n %d %p %N %i %I (or %% for a literal %)
### show w1 -c:2 8
celery (exit 0):
    (usage text; "Invalid command: show" on stderr)
qmulti (exit 2):
    stderr: qmulti show: -c:2: index 2 is past the last node (1)
"""


def _parse(text: str) -> list[tuple[str, list[str], int, list[str]]]:
    cases = []
    for block in text.split("### ")[1:]:
        lines = block.rstrip("\n").split("\n")
        args = lines[0]
        split = next(i for i, line in enumerate(lines) if line.startswith("qmulti (exit "))
        celery = [line[4:] for line in lines[2:split]]
        code = int(re.match(r"qmulti \(exit (\d+)\):", lines[split]).group(1))
        ours = [line[4:] for line in lines[split + 1:]]
        cases.append((args, celery, code, ours))
    return cases


CASES = _parse(RECORDED)


@pytest.mark.parametrize(("args", "celery", "code", "ours"), CASES, ids=[c[0] for c in CASES])
def test_qmulti_output(args: str, celery: list[str], code: int, ours: list[str],
                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "vm")
    monkeypatch.setenv("HOME", "/home/u")
    assert cli.main(shlex.split(args)) == code
    captured = capsys.readouterr()
    printed = captured.out.splitlines()
    if captured.err:
        assert len(captured.err.splitlines()) == 1, "an error is one line"
        assert "Traceback" not in captured.err
        printed.append("stderr: " + captured.err.strip())
    if ours == ["(usage text)"]:
        assert printed[0].startswith("usage: qmulti start") and len(printed) > 5
        return
    assert printed == ([] if ours == ["(nothing)"] else ours)


# Where qmulti deliberately reads or prints otherwise than Celery for names/expand.
NAMES_DIFFER = {
    "names 3 --range-prefix worker",  # Celery: --range-prefix takes no spaced value
    "names w1 w2 --loglevel info",  # Celery: `info` becomes a node
    "names 0", "names w1 w1", "names 2 -n", "names 2 -n w%i@example.com",
    "expand %x w1", "expand %h/%x w1",  # usage error, not a traceback
    "expand %h", "names",  # no nodes: usage error, Celery prints nothing
}


@pytest.mark.parametrize(("args", "celery", "code", "ours"),
                         [c for c in CASES if c[0].split()[0] in ("names", "expand")],
                         ids=[c[0] for c in CASES if c[0].split()[0] in ("names", "expand")])
def test_names_and_expand_match_celery(args: str, celery: list[str], code: int,
                                       ours: list[str]) -> None:
    """`names` and `expand` print what Celery prints, except the listed traps."""
    if args in NAMES_DIFFER:
        assert ours != celery
    else:
        assert code == 0 and ours == celery


def test_every_difference_is_recorded() -> None:
    assert len(CASES) >= 100
    assert NAMES_DIFFER <= {c[0] for c in CASES}


@pytest.mark.parametrize("command", [
    "names 3 -A tasks", "show 3 -A tasks --pidfile=run/%n.pid --logfile=log/%n%I.log",
    "expand log/%n.log 3", "get celery1 3 -A tasks", "show w1 -c:2 4",
])
def test_read_only_commands_create_nothing(tmp_path: Path, command: str) -> None:
    """Celery's multi creates the pid and log directories even for `names`."""
    env = dict(os.environ, HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "qmulti.supervisor", *shlex.split(command)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 2)
    assert list(tmp_path.iterdir()) == []


def test_console_script_exit_codes(tmp_path: Path) -> None:
    qmulti = Path(sys.executable).parent / "qmulti"
    runs = {
        ("show", "2", "-c:3", "4"): 2,
        ("frobnicate", "2"): 2,
        ("get", "w9", "w1"): 1,
        ("names", "w1", "w2"): 0,
        ("names", "bad/name"): 2,
        (): 2,
    }
    for args, code in runs.items():
        proc = subprocess.run([str(qmulti), *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == code, (args, proc.stderr)
        if code:
            assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []
