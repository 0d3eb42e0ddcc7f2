"""The one `%`-expansion (qmulti.system.expand) as the node and the grammar use it."""

from __future__ import annotations

import pytest

from qmulti.exceptions import UsageError
from qmulti.node.logs import expand_hostname, expand_path
from qmulti.supervisor.grammar import expand as grammar_expand
from qmulti.supervisor.options import GrammarError
from qmulti.system.expand import expand, host_keys

KEYS = {"h": "w1@a.b", "n": "w1"}


def unknown(key: str) -> Exception:
    return KeyError(key)


@pytest.mark.parametrize(("template", "strict", "loose"), [
    ("%h/%n.log", "w1@a.b/w1.log", "w1@a.b/w1.log"),
    ("100%%", "100%", "100%"),
    ("end%", "end%", "end%"),
    ("%-x", KeyError, "%-x"),       # the grammar leaves % before a non-word character
    ("%q", KeyError, KeyError),
])
def test_both_modes(template: str, strict: object, loose: object) -> None:
    for word_keys_only, want in ((False, strict), (True, loose)):
        if want is KeyError:
            with pytest.raises(KeyError):
                expand(template, KEYS, unknown, word_keys_only=word_keys_only)
        else:
            assert expand(template, KEYS, unknown, word_keys_only=word_keys_only) == want


def test_the_escape_for_a_second_expansion() -> None:
    assert expand("%%i-%n", KEYS, unknown, escape="%%") == "%%i-w1"


def test_node_and_grammar_agree_on_host_keys() -> None:
    assert host_keys("box.example.com") == {"h": "box.example.com", "n": "box",
                                            "d": "example.com"}
    assert expand_hostname("w1@%n.%d", "box.example.com") == "w1@box.example.com"
    assert grammar_expand("%h", host_keys("box.example.com")) == "box.example.com"


def test_each_side_keeps_its_own_error() -> None:
    with pytest.raises(UsageError, match=r"unknown %q in '%q.log'; use %h, %n, %d, %i or %I"):
        expand_path("%q.log", "w1@box")
    with pytest.raises(GrammarError, match=r"unknown %q in --logfile '%q': use %h %n"):
        grammar_expand("%q", {"h": "x", "n": "y"}, what="--logfile")
    assert expand_path("%n%I.log", "w1@box", 2) == "w1-2.log"
