"""THROTTLED_MAX_BODY, THROTTLED_READ_TIMEOUT, THROTTLED_CLEANER_INTERVAL: defaults, parsing,
one clear line for a bad value, and the cleaner's cron job built from the interval."""

import datetime as dt

import pytest

from throttled.cleaner import CLEANER_CRON
from throttled.cleaner.cleaner import cleaner_cron
from throttled.settings import ENV_NAMES, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV_NAMES.values():
        monkeypatch.delenv(name, raising=False)


def test_defaults():
    settings = load_settings()
    assert settings.max_body_bytes == 65536
    assert settings.read_timeout_s == 30.0
    assert settings.cleaner_interval_s == 60.0


def test_from_environment(monkeypatch):
    monkeypatch.setenv("THROTTLED_MAX_BODY", "1048576")
    monkeypatch.setenv("THROTTLED_READ_TIMEOUT", "2.5")
    monkeypatch.setenv("THROTTLED_CLEANER_INTERVAL", "300")
    settings = load_settings()
    assert (settings.max_body_bytes, settings.read_timeout_s, settings.cleaner_interval_s) == (1048576, 2.5, 300.0)


def test_from_toml_short_keys(tmp_path):
    config = tmp_path / "throttled.toml"
    config.write_text("max_body = 1000\nread_timeout = 5\ncleaner_interval = 30.5\n")
    settings = load_settings(config)
    assert (settings.max_body_bytes, settings.read_timeout_s, settings.cleaner_interval_s) == (1000, 5.0, 30.5)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("THROTTLED_MAX_BODY", "0"),
        ("THROTTLED_MAX_BODY", "-1"),
        ("THROTTLED_MAX_BODY", "64k"),
        ("THROTTLED_MAX_BODY", "1.5"),
        ("THROTTLED_MAX_BODY", "inf"),
        ("THROTTLED_READ_TIMEOUT", "0"),
        ("THROTTLED_READ_TIMEOUT", "-3"),
        ("THROTTLED_READ_TIMEOUT", "nan"),
        ("THROTTLED_READ_TIMEOUT", "inf"),
        ("THROTTLED_READ_TIMEOUT", "30s"),
        ("THROTTLED_CLEANER_INTERVAL", "0"),
        ("THROTTLED_CLEANER_INTERVAL", "0.5"),
        ("THROTTLED_CLEANER_INTERVAL", "nan"),
        ("THROTTLED_CLEANER_INTERVAL", "inf"),
        ("THROTTLED_CLEANER_INTERVAL", "1m"),
        # upper bounds (a new-user trial: 1e12 passed `config check` and crashed `run`)
        ("THROTTLED_CLEANER_INTERVAL", "1e12"),
        ("THROTTLED_CLEANER_INTERVAL", "86401"),
        ("THROTTLED_MAX_BODY", "99999999999999999999"),
        ("THROTTLED_MAX_BODY", "16777217"),
        ("THROTTLED_READ_TIMEOUT", "1e308"),
        # a second trial: these passed `config check` and crashed `run`, or (the block) made
        # every webhook a 500 on a daemon that looked healthy
        ("THROTTLED_JOB_LEASE", "1e308"),
        ("THROTTLED_JOB_RETENTION", "1e300"),
        ("THROTTLED_WORKERS", "99999999999999999999"),
        ("THROTTLED_BLOCK_DURATION", "P3000000D"),
        ("THROTTLED_SHUTDOWN_GRACE", "1e300"),
        ("THROTTLED_HOLD_SECONDS", "1e300"),
        ("THROTTLED_PORTAL_BUDGET_WINDOW", "1e300"),
    ],
)
def test_bad_value_is_one_line_naming_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(variable + ":") and "\n" not in message


def test_cleaner_cron_from_the_interval():
    assert CLEANER_CRON.every == dt.timedelta(minutes=1) and CLEANER_CRON.name == "cleaner"
    job = cleaner_cron(15)
    assert job.every == dt.timedelta(seconds=15) and (job.name, job.kind) == (CLEANER_CRON.name, CLEANER_CRON.kind)
    now = dt.datetime(2026, 1, 1, 12, 0, 44, tzinfo=dt.UTC)
    assert job.slot_key(now) == "cron:cleaner:2026-01-01T12:00:30Z"


def test_admin_hosts_default_to_loopback_names_and_the_bind_host():
    assert load_settings(admin_bind="127.0.0.1:8081").admin_hosts_allowed == ("localhost", "127.0.0.1", "::1")
    assert load_settings(admin_bind="10.1.2.3:8081").admin_hosts_allowed == ("localhost", "127.0.0.1", "::1", "10.1.2.3")
    assert load_settings(admin_bind="0.0.0.0:8081").admin_hosts_allowed == ("localhost", "127.0.0.1", "::1")
    assert load_settings(admin_hosts="a.internal, b.internal").admin_hosts_allowed == ("a.internal", "b.internal")
    assert load_settings(admin_hosts="*").admin_hosts_allowed is None


def test_admin_hosts_that_are_not_host_names_are_refused():
    for bad in ("", " , ", "http://x.example", "a b", "x/y"):
        with pytest.raises(SettingsError, match="THROTTLED_ADMIN_HOSTS"):
            load_settings(admin_hosts=bad)
