"""Pure grammar functions: tokenizing, SPEC resolution, paths, and what a node is run with."""

from __future__ import annotations

import pytest

from qmulti.supervisor.grammar import build, expand, find, host_keys, node_keys
from qmulti.supervisor.options import GrammarError, Option, tokenize


def test_tokenize_reads_spaced_values_of_known_long_options() -> None:
    parsed = tokenize(["w1", "--loglevel", "info", "w2", "--foo", "w3", "-x", "y", "--", "-c", "3"])
    assert parsed.positional == ["w1", "w2", "w3"]
    assert parsed.options == [
        Option("--loglevel", "--loglevel", "info"),
        Option("--foo", "--foo", None),  # unknown long: a flag, as Celery reads it
        Option("-x", "-x", "y"),  # unknown short: takes the next word, as Celery
    ]
    assert parsed.passthrough == ["-c", "3"]


def test_tokenize_keys_aliases_together_and_keeps_spelling() -> None:
    parsed = tokenize(["-c:1-3", "4", "--concurrency:w1=8", "-p", "x.pid"])
    assert [(o.key, o.spelling, o.value, o.spec) for o in parsed.options] == [
        ("--concurrency", "-c", "4", "1-3"),
        ("--concurrency", "--concurrency", "8", "w1"),
        ("--pidfile", "-p", "x.pid", None),
    ]


@pytest.mark.parametrize("argv", [["-n"], ["w1", "-c"], ["w1", "-c:1", "-l", "info"],
                                  ["w1", "--loglevel"], ["w1", "-c:", "3"], ["w1", "--timeout"]])
def test_missing_values_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(GrammarError):
        build(argv, "vm")


@pytest.mark.parametrize(("argv", "message"), [
    (["3", "-c:4", "2"], "index 4 is past the last node (3)"),
    (["3", "-c:0", "2"], "bad range '0'"),
    (["3", "-c:3-1", "2"], "bad range '3-1'"),
    (["3", "-c:1-", "2"], "bad range '1-'"),
    (["3", "-c:1,,2", "2"], "no node named ''"),
    (["w1", "-c:w2", "2"], "no node named 'w2'"),
    (["w1", "--pidfile=%q.pid"], "unknown %q in --pidfile"),
    (["w1", "-Q", "%z"], "unknown %z in -Q"),
    (["w1/x"], "bad node name 'w1/x'"),
    (["w1@"], "bad node name 'w1@'"),
    (["@h"], "bad node name '@h'"),
    (["w%i"], "%i and %I are for paths"),
    (["w1", "w1@vm"], "given twice"),
    (["w1", "-n", "a@b"], "host half only"),
    (["w1", "--timeout", "soon"], "--timeout 'soon'"),
    (["w1", "--timeout=-1"], "--timeout '-1'"),
    (["w1", "--json:1"], "cannot be given per node"),
    (["w1", "--cmd=foo"], "celery multi option"),
    (["w1", "w2", "--pidfile=x.pid"], "would share the pidfile x.pid"),
])
def test_malformed_grammar_names_the_problem(argv: list[str], message: str) -> None:
    with pytest.raises(GrammarError, match=None) as info:
        build(argv, "vm")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_spec_by_index_range_name_and_full_name() -> None:
    nodes = build(["a", "b", "c", "d@x", "-c:1-2,d", "3", "-c:c@vm", "9", "-Q:4", "q"], "vm").nodes
    assert [[o.argv() for o in n.options] for n in nodes] == [
        [["-c", "3"]], [["-c", "3"]], [["-c", "9"]], [["-c", "3"], ["-Q", "q"]],
    ]


def test_per_node_option_replaces_global_in_place_and_last_wins() -> None:
    nodes = build(["2", "-c", "1", "-l", "info", "-c:2", "5", "--concurrency:2=6"], "vm").nodes
    assert nodes[0].argv()[1:5] == ["-c", "1", "-l", "info"]
    assert nodes[1].argv()[1:4] == ["--concurrency=6", "-l", "info"]


def test_defaults_are_in_the_current_directory_and_keep_percent_i() -> None:
    (node,) = build(["w1"], "host.example.com").nodes
    assert node.name == "w1@host.example.com"
    assert node.pidfile == "w1.pid"
    assert node.logfile == "w1%I.log"  # the node expands %I per pool child
    assert node.main_logfile == "w1.log"
    assert node.argv(cwd="/srv") == [
        "--detach", "-n", "w1@host.example.com", "--pidfile=/srv/w1.pid",
        "--logfile=/srv/w1%I.log",
    ]


def test_pidfile_is_fully_expanded_for_the_main_process() -> None:
    (node,) = build(["w1", "--pidfile=run/%n-%i%I.pid", "-f", "log/%d/%n-%i.log"], "vm").nodes
    assert node.pidfile == "run/w1-0.pid"
    assert node.logfile == "log/vm/w1-%i.log"
    assert node.main_logfile == "log/vm/w1-0.log"


def test_tilde_goes_through_the_given_expanduser() -> None:
    (node,) = build(["w1", "--pidfile=~/%n.pid"], "vm", lambda p: p.replace("~", "/h")).nodes
    assert node.pidfile == "/h/w1.pid"


def test_settings_are_taken_out_of_the_node_options() -> None:
    inv = build(["w1", "--timeout", "2.5", "--json", "-q", "--detach", "-A", "t"], "vm")
    assert (inv.timeout, inv.json, inv.quiet) == (2.5, True, True)
    assert inv.nodes[0].argv() == ["--detach", "-A", "t", "-n", "w1@vm",
                                   "--pidfile=w1.pid", "--logfile=w1%I.log"]


def test_broker_urls_go_to_the_environment_and_show_masks_them() -> None:
    (node,) = build(["w1", "-b", "redis://:s3cret@h/0", "--result-backend=redis://u:pw@h/1",
                     "--", "--x=redis://:p2@h"], "vm").nodes
    assert dict(node.env) == {"QMULTI_BROKER_URL": "redis://:s3cret@h/0",
                              "QMULTI_RESULT_BACKEND": "redis://u:pw@h/1"}
    assert "s3cret" not in " ".join(node.argv())  # not in `ps` of the node either
    line = node.show_line()
    assert "s3cret" not in line and "pw@" not in line and "p2@" not in line
    assert line.count("***") == 3


def test_qworker_value_options_match_qworker_cli() -> None:
    """A value option qmulti does not know would swallow `--opt value` as a node name."""
    from qmulti.node import cli
    from qmulti.supervisor.options import PATH_OPTIONS, QWORKER_VALUE_OPTIONS

    theirs = {opt for p in cli._command.params if not getattr(p, "is_flag", False)
              for opt in p.opts if opt.startswith("--")}
    ours = set(QWORKER_VALUE_OPTIONS) | set(PATH_OPTIONS) | {"--hostname"}
    assert theirs == ours


def test_expand_keys() -> None:
    keys = node_keys("w1@a.b", "w1", "a.b")
    assert expand("%h %n %d %p %N %i %I %%", keys) == "w1@a.b w1 a.b w1@a.b w1 %i %I %"
    assert expand("%h|%n|%d", host_keys("a.b.c")) == "a.b.c|a|b.c"
    assert expand("100% -%", keys) == "100% -%"  # % before a non-word is left alone


def test_find_by_full_or_unique_short_name() -> None:
    nodes = build(["w1@a", "w1@b", "w2", "--pidfile=%h.pid"], "vm").nodes
    assert find(nodes, "w1@b") is nodes[1]
    assert find(nodes, "w2") is nodes[2]
    assert find(nodes, "w1") is None  # ambiguous
