"""`%`-expansion of node names and paths, shared by the node (`-n`, `--logfile`,
`--pidfile`) and the controller's grammar, so `%h` means the same thing to both.

Each caller brings its own keys and its own error (a node's usage error, the
grammar's), and one choice: on the node every `%x` is a key, while the controller's
grammar, like celery multi's, leaves `%` before anything but a letter, digit or `_`
as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

__all__ = ["expand", "host_keys"]

_ANY_KEY = re.compile(r"%(.)", re.S)
_WORD_KEY = re.compile(r"%([%\w])")


def expand(template: str, keys: Mapping[str, str], unknown: Callable[[str], Exception], *,
           escape: str = "%", word_keys_only: bool = False) -> str:
    """Replace each `%x` by `keys[x]`; `%%` becomes `escape`, a `%` at the very end stays.
    An unknown key raises `unknown(key)`."""

    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "%":
            return escape
        if key not in keys:
            raise unknown(key)
        return keys[key]

    return (_WORD_KEY if word_keys_only else _ANY_KEY).sub(one, template)


def host_keys(hostname: str) -> dict[str, str]:
    """%h the host name with its domain, %n the short name, %d the domain."""
    first, _, domain = hostname.partition(".")
    return {"h": hostname, "n": first, "d": domain}
