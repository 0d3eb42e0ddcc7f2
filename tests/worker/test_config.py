"""Settings: both spellings, every kind of source, warnings, conflicts, precedence, env."""

from __future__ import annotations

import itertools
import logging
import sys
import types
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from qmulti import App
from qmulti.config import Config
from qmulti.exceptions import ConfigError, ImproperlyConfigured
from qmulti.settings import BY_NAME, TABLE

# One valid non-default value per setting, and how it reads back after coercion. Adding
# a setting to the table without a sample here fails test_every_setting_has_a_sample.
SAMPLES: dict[str, tuple[Any, Any]] = {
    "broker_url": ("redis://localhost:6379/3", "redis://localhost:6379/3"),
    "result_backend": ("redis://localhost:6379/4", "redis://localhost:6379/4"),
    "broker_pool_limit": (3, 3),
    "broker_connection_timeout": (7, 7.0),
    "broker_transport_options": ({"visibility": 1}, {"visibility": 1}),
    "beat_schedule": ({"tick": {"task": "t.add", "schedule": 5}},
                      {"tick": {"task": "t.add", "schedule": 5}}),
    "broker_max_deliveries": (9, 9),
    "imports": (["a.tasks", "b.tasks"], ("a.tasks", "b.tasks")),
    "include": ("c.tasks", ("c.tasks",)),
    "task_serializer": ("application/x-python-serialize", "pickle"),
    "result_serializer": ("pickle", "pickle"),
    "accept_content": (["application/json", "pickle"], ("json", "pickle")),
    "timezone": ("Europe/Paris", "Europe/Paris"),
    "enable_utc": (False, False),
    "task_routes": ({"a.*": {"queue": "a"}}, ({"a.*": {"queue": "a"}},)),
    "task_annotations": ({"*": {"rate_limit": "1/s"}}, {"*": {"rate_limit": "1/s"}}),
    "task_default_queue": ("default", "default"),
    "task_default_rate_limit": ("5/m", "5/m"),
    "task_acks_late": (True, True),
    "task_ignore_result": (True, True),
    "task_track_started": (False, False),
    "task_store_errors_even_if_ignored": (True, True),
    "task_always_eager": (True, True),
    "task_eager_propagates": (True, True),
    "result_extended": (True, True),
    "task_time_limit": (30, 30.0),
    "task_soft_time_limit": (25, 25.0),
    "result_expires": (timedelta(hours=2), 7200.0),
    "result_cache_max": (7, 7),
    "worker_concurrency": (3, 3),
    "worker_prefetch_multiplier": (1, 1),
    "worker_max_tasks_per_child": (100, 100),
    "worker_max_memory_per_child": (200000, 200000),
    "worker_heartbeat_interval": (1, 1.0),
    "worker_heartbeat_expiry": (30, 30.0),
    "worker_send_task_events": ("yes", True),
    "task_send_sent_event": (True, True),
    "event_stream_maxlen": ("500", 500),
    "middleware": ("proj.hooks:Metrics", ("proj.hooks:Metrics",)),
}

CONTRACT_PAIRS = [
    ("broker_url", "BROKER_URL"), ("result_backend", "CELERY_RESULT_BACKEND"),
    ("imports", "CELERY_IMPORTS"), ("task_serializer", "CELERY_TASK_SERIALIZER"),
    ("result_serializer", "CELERY_RESULT_SERIALIZER"),
    ("accept_content", "CELERY_ACCEPT_CONTENT"), ("timezone", "CELERY_TIMEZONE"),
    ("enable_utc", "CELERY_ENABLE_UTC"), ("task_routes", "CELERY_ROUTES"),
    ("task_annotations", "CELERY_ANNOTATIONS"), ("broker_pool_limit", "BROKER_POOL_LIMIT"),
    ("result_expires", "CELERY_TASK_RESULT_EXPIRES"),
    ("result_cache_max", "CELERY_MAX_CACHED_RESULTS"),
    ("worker_concurrency", "CELERYD_CONCURRENCY"),
    ("worker_prefetch_multiplier", "CELERYD_PREFETCH_MULTIPLIER"),
    ("task_acks_late", "CELERY_ACKS_LATE"), ("task_time_limit", "CELERYD_TASK_TIME_LIMIT"),
    ("task_soft_time_limit", "CELERYD_TASK_SOFT_TIME_LIMIT"),
    ("worker_max_tasks_per_child", "CELERYD_MAX_TASKS_PER_CHILD"),
    ("worker_max_memory_per_child", "CELERYD_MAX_MEMORY_PER_CHILD"),
    ("task_default_queue", "CELERY_DEFAULT_QUEUE"),
]

_module_ids = itertools.count()


def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> str:
    """A real config module on sys.path under a name no other test uses."""
    name = f"qm_test_config_{next(_module_ids)}_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def test_every_setting_has_a_sample() -> None:
    assert set(SAMPLES) == set(BY_NAME)
    assert len(TABLE) == len(BY_NAME), "a setting is listed twice"


@pytest.mark.parametrize(("new", "old"), CONTRACT_PAIRS)
def test_contract_pairs_are_in_the_table(new: str, old: str) -> None:
    assert BY_NAME[new].old == old


@pytest.mark.parametrize("setting", TABLE, ids=lambda s: s.name)
def test_every_spelling_reads_and_writes(setting: Any) -> None:
    raw, expected = SAMPLES[setting.name]
    for spelling in setting.spellings:
        conf = Config()
        conf.update({spelling: raw})
        for other in setting.spellings:
            assert conf[other] == expected, (spelling, other)
            assert getattr(conf, other) == expected
        frozen = conf.freeze()
        assert frozen[setting.name] == expected
        assert getattr(frozen, setting.old or setting.name) == expected


@pytest.mark.parametrize("setting", [s for s in TABLE if s.old], ids=lambda s: s.name)
def test_old_names_are_read_from_an_object(setting: Any) -> None:
    raw, expected = SAMPLES[setting.name]
    source = type("Cfg", (), {setting.old: raw})
    app = App()
    app.config_from_object(source)
    assert app.conf[setting.name] == expected


def test_defaults() -> None:
    conf = App().conf
    assert conf.broker_url == "sqlite:///qmulti.sqlite3"
    assert conf.result_backend is None
    assert conf.task_default_queue == "celery"
    assert conf.worker_prefetch_multiplier == 4
    assert conf.result_expires == 86400.0
    assert conf.task_serializer == "json" and conf.accept_content == ("json",)
    assert conf.worker_heartbeat_interval == 2.0 and conf.worker_heartbeat_expiry == 10.0
    assert conf.broker_max_deliveries == 5
    assert conf["CELERY_DEFAULT_QUEUE"] == "celery"


def test_module_name_source_reads_upper_and_known_lower_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    name = write_module(tmp_path, monkeypatch, (
        "import os\n"
        "from datetime import timedelta\n"
        "BROKER_URL = 'memory://'\n"
        "CELERY_TASK_RESULT_EXPIRES = timedelta(minutes=5)\n"
        "CELERY_IMPORTS = ('mycelery.tasks',)\n"
        "worker_concurrency = 3\n"
        "helper_value = 42\n"
        "def on_failure(*a): pass\n"
    ))
    app = App("proj")
    with caplog.at_level(logging.WARNING, logger="qmulti.config"):
        app.config_from_object(name)
    assert app.conf.broker_url == "memory://"
    assert app.conf.result_expires == 300.0
    assert app.conf.imports == ("mycelery.tasks",)
    assert app.conf.worker_concurrency == 3
    assert "helper_value" not in app.conf and "on_failure" not in app.conf
    assert caplog.records == []


def test_module_object_class_instance_and_dict_sources() -> None:
    module = types.ModuleType("cfgmod")
    module.BROKER_URL = "memory://a"  # type: ignore[attr-defined]

    class Klass:
        BROKER_URL = "memory://b"

    class Instance:
        def __init__(self) -> None:
            self.broker_url = "memory://c"

    for source, expected in [(module, "memory://a"), (Klass, "memory://b"),
                             (Instance(), "memory://c"), ({"BROKER_URL": "memory://d"},
                                                          "memory://d")]:
        app = App()
        app.config_from_object(source)
        assert app.conf.broker_url == expected


def test_module_attr_path_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = write_module(tmp_path, monkeypatch,
                        "class Settings:\n    CELERY_DEFAULT_QUEUE = 'q1'\n")
    for path in (f"{name}:Settings", f"{name}.Settings"):
        app = App()
        app.config_from_object(path)
        assert app.conf.task_default_queue == "q1"


def test_missing_config_module_is_a_config_error() -> None:
    with pytest.raises(ImproperlyConfigured, match="no module named 'qm_no_such_config'"):
        App().config_from_object("qm_no_such_config")
    App().config_from_object("qm_no_such_config", silent=True)


def test_config_module_with_a_broken_import_names_the_missing_module(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = write_module(tmp_path, monkeypatch, "import qm_missing_dependency\n")
    with pytest.raises(ConfigError, match="qm_missing_dependency"):
        App().config_from_object(name)


def test_unknown_names_are_kept_as_custom_keys() -> None:
    class Cfg:
        CELERY_RESULT_BACKEN = "memory://"
        SOMETHING_ELSE_ENTIRELY = 1

    app = App()
    app.config_from_object(Cfg)
    assert app.conf.result_backend is None
    assert app.conf["SOMETHING_ELSE_ENTIRELY"] == 1  # kept, as Celery keeps custom keys


def test_same_setting_twice_with_different_values_is_an_error() -> None:
    class Cfg:
        BROKER_URL = "redis://:hunter2@host/0"
        broker_url = "redis://:swordfish@host/1"

    with pytest.raises(ConfigError) as info:
        App().config_from_object(Cfg)
    text = str(info.value)
    assert "BROKER_URL" in text and "broker_url" in text
    assert "redis://:***@host/0" in text and "redis://:***@host/1" in text
    assert "hunter2" not in text and "swordfish" not in text


def test_conflict_in_one_update_names_both() -> None:
    with pytest.raises(ConfigError, match="CELERYD_CONCURRENCY=2.*worker_concurrency=4"):
        App().conf.update({"CELERYD_CONCURRENCY": 2}, worker_concurrency=4)


def test_same_value_in_both_spellings_is_fine() -> None:
    class Cfg:
        CELERY_TASK_RESULT_EXPIRES = 60
        result_expires = timedelta(seconds=60)

    app = App()
    app.config_from_object(Cfg)
    assert app.conf.result_expires == 60.0


def test_precedence_later_explicit_values_win() -> None:
    class Cfg:
        BROKER_URL = "memory://from-config"
        CELERY_DEFAULT_QUEUE = "from-config"
        CELERYD_CONCURRENCY = 2

    app = App(broker="memory://from-ctor")
    app.config_from_object(Cfg)
    assert app.conf.broker_url == "memory://from-ctor"  # constructor beats the object
    assert app.conf.task_default_queue == "from-config"
    app.conf.update(task_default_queue="from-update")
    assert app.conf.task_default_queue == "from-update"
    app.conf.worker_concurrency = 5
    app.conf["CELERYD_CONCURRENCY"] = 6
    assert app.conf.worker_concurrency == 6

    class Other:
        CELERY_DEFAULT_QUEUE = "other"

    app2 = App()
    app2.config_from_object(Cfg)
    app2.config_from_object(Other)  # replaces the first object, as in Celery
    assert app2.conf.task_default_queue == "other"
    assert app2.conf.worker_concurrency is None


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    app = App(broker="memory://code", backend="memory://code")
    monkeypatch.setenv("QMULTI_BROKER_URL", "redis://:pw@envhost/0")
    monkeypatch.setenv("QMULTI_RESULT_BACKEND", "redis://envhost/1")
    assert app.conf.broker_url == "redis://:pw@envhost/0"
    assert app.conf["CELERY_RESULT_BACKEND"] == "redis://envhost/1"
    frozen = app.conf.freeze()
    assert frozen.broker_url == "redis://:pw@envhost/0"
    assert "pw" not in repr(frozen)
    monkeypatch.delenv("QMULTI_BROKER_URL")
    assert app.conf.broker_url == "memory://code"


def test_freeze_is_an_immutable_snapshot() -> None:
    app = App(broker="memory://")
    frozen = app.conf.freeze()
    app.conf.update(task_default_queue="changed")
    assert frozen.task_default_queue == "celery"
    assert frozen["CELERY_DEFAULT_QUEUE"] == "celery"
    with pytest.raises(AttributeError):
        frozen.task_default_queue = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        frozen._data["task_default_queue"] = "x"  # type: ignore[index]
    assert dict(frozen.items())["broker_url"] == "memory://"


def test_namespace_reads_django_style_names() -> None:
    class DjangoSettings:
        CELERY_BROKER_URL = "memory://dj"
        CELERY_TASK_ROUTES = {"x": {"queue": "y"}}
        DEBUG = True  # not ours: no warning, not read

    app = App()
    app.config_from_object(DjangoSettings, namespace="CELERY")
    assert app.conf.broker_url == "memory://dj"
    assert app.conf.task_routes == ({"x": {"queue": "y"}},)
    assert "DEBUG" not in app.conf


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("result_expires", "soon", "result_expires"),
    ("CELERYD_PREFETCH_MULTIPLIER", 0, "CELERYD_PREFETCH_MULTIPLIER.*1 or more"),
    ("worker_concurrency", 0, "worker_concurrency"),
    ("task_serializer", "yaml", "task_serializer.*unknown serializer"),
    ("CELERY_ROUTES", 42, "CELERY_ROUTES"),
    ("task_annotations", {"*": "not a dict"}, "task_annotations"),
    ("enable_utc", "maybe", "enable_utc"),
    ("imports", [1, 2], "imports"),
])
def test_bad_values_are_config_errors_naming_the_setting(key: str, value: Any,
                                                        needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        App().conf.update({key: value})


def test_result_expires_accepts_seconds_timedelta_and_none() -> None:
    conf = Config()
    conf.update(result_expires=120)
    assert conf.result_expires == 120.0
    conf.update(CELERY_TASK_RESULT_EXPIRES=timedelta(days=2))
    assert conf.result_expires == 172800.0
    conf.update(result_expires=None)
    assert conf.result_expires is None


def test_conf_mapping_helpers() -> None:
    conf = App().conf
    assert conf.get("BROKER_URL") == conf.broker_url
    assert conf.get("nope", 1) == 1
    assert "CELERY_ROUTES" in conf and "nope" not in conf
    with pytest.raises(AttributeError):
        _ = conf.nope
    with pytest.raises(KeyError):
        _ = conf["NOPE"]
    assert conf.setdefault("task_default_queue", "x") == "x"
    assert conf.setdefault("CELERY_DEFAULT_QUEUE", "y") == "x"
