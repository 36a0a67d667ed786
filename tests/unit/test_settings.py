"""Settings: one clear line naming the variable for every bad value."""

import pytest

from throttled.crypto import generate_key
from throttled.settings import (
    ENV_NAMES,
    Settings,
    SettingsError,
    duration_seconds,
    load_settings,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV_NAMES.values():
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("THROTTLED_BIND", "8080"),
        ("THROTTLED_ENCRYPTION_KEY", "too-short"),
        ("THROTTLED_WORKERS", "0"),
        ("THROTTLED_PUBLIC_URL", "ftp://x"),
        ("THROTTLED_BLOCK_DURATION", "P1M"),
        ("THROTTLED_BLOCK_MAX", "P1Y"),
        ("THROTTLED_BLOCK_MAX", "P53W"),
        ("THROTTLED_BLOCK_MAX", "PT30M"),  # under a day: with an hour of margin, nothing could be held
        ("THROTTLED_BLOCK_DURATION", "PT10M"),  # under the hour of margin every block has anyway
        ("THROTTLED_BLOCK_DURATION", "P7DT"),  # not ISO-8601: a T needs a time after it
        ("THROTTLED_POLL_INTERVAL", "-1"),
        ("THROTTLED_POLL_INTERVAL", "nan"),
        ("THROTTLED_JOB_LEASE", "inf"),
        ("THROTTLED_LOG_LEVEL", "LOUD"),
        ("THROTTLED_DATABASE_URL", "mysql://root@localhost/db"),
        ("THROTTLED_DATABASE_URL", "notaurl"),
        ("HUBSPOT_CLIENT_SECRET", ""),
        ("HUBSPOT_CLIENT_SECRET", "   "),
        ("THROTTLED_ADMIN_TOKEN", "short"),
        ("THROTTLED_ADMIN_TOKEN", "a-long-enough-admin-token "),  # trailing space: could never match a header
        ("THROTTLED_ADMIN_TOKEN", "a-long-enough\tadmin-token"),
    ],
)
def test_bad_value_names_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(variable + ":") and "\n" not in message


def test_required_setting_named_when_missing():
    with pytest.raises(SettingsError, match=r"^HUBSPOT_CLIENT_SECRET is not set$"):
        load_settings().require("hubspot_client_secret")


def test_toml_file_and_environment_precedence(tmp_path, monkeypatch):
    config = tmp_path / "throttled.toml"
    config.write_text('bind = "0.0.0.0:9000"\nTHROTTLED_WORKERS = 4\n')
    monkeypatch.setenv("THROTTLED_WORKERS", "8")
    settings = load_settings(config)
    assert settings.bind == "0.0.0.0:9000" and settings.workers == 8


def test_only_documented_variables_are_read(monkeypatch):
    monkeypatch.setenv("WORKERS", "0")
    monkeypatch.setenv("DATABASE_URL", "postgresql://elsewhere/db")
    settings = load_settings()
    assert settings.workers == 32 and settings.database_url is None


def test_toml_short_keys(tmp_path):
    config = tmp_path / "throttled.toml"
    config.write_text('poll_interval = 2.5\nhubspot_client_id = "abc"\n')
    settings = load_settings(config)
    assert settings.poll_interval_s == 2.5 and settings.hubspot_client_id == "abc"


@pytest.mark.parametrize("text", ['databse_url = "x"', '[throttled]\nbind = "1.2.3.4:5"', "bind = ", "poll_interval_s = 2"])
def test_unknown_or_malformed_toml_is_an_error(tmp_path, text):
    config = tmp_path / "throttled.toml"
    config.write_text(text)
    with pytest.raises(SettingsError, match="--config"):
        load_settings(config)


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="--config"):
        load_settings(tmp_path / "nope.toml")


def test_secrets_hidden_from_repr(monkeypatch):
    key = generate_key()
    monkeypatch.setenv("THROTTLED_ENCRYPTION_KEY", key)
    monkeypatch.setenv("HUBSPOT_CLIENT_SECRET", "very-secret-value")
    settings = load_settings()
    assert key not in repr(settings) and "very-secret-value" not in repr(settings)
    assert settings.secret("hubspot_client_secret") == "very-secret-value"


@pytest.mark.parametrize(("text", "seconds"), [("P7D", 604800), ("P1W", 604800), ("PT12H", 43200), ("P1DT1M", 86460)])
def test_durations(text, seconds):
    assert duration_seconds(text) == seconds


def test_every_setting_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for field in Settings.model_fields:
        assert f"`{ENV_NAMES[field]}`" in readme, ENV_NAMES[field]


def test_key_ring_from_both_variables(monkeypatch):
    from throttled.crypto import fingerprint, parse_key

    legacy = generate_key()
    monkeypatch.setenv("THROTTLED_ENCRYPTION_KEY", legacy)
    assert load_settings().key_ring().key_id == fingerprint(parse_key(legacy))
    monkeypatch.setenv("THROTTLED_ENCRYPTION_KEYS", f"k2:{generate_key()}")
    ring = load_settings().key_ring()
    assert ring.key_id == "k2" and fingerprint(parse_key(legacy)) in ring.key_ids  # old tokens still decrypt


def test_no_key_is_one_clear_line():
    with pytest.raises(SettingsError, match=r"^THROTTLED_ENCRYPTION_KEYS .*is not set$"):
        load_settings().key_ring()


def test_once_per_logs_a_key_once_per_interval_in_bounded_memory():
    from throttled.logs import OncePer

    once = OncePer(10.0, capacity=2)
    assert [once.due("a", t) for t in (0.0, 5.0, 6.0, 10.0)] == [0, None, None, 2]  # 2 not logged in between
    assert once.due("b", 0.0) == 0 and once.due("c", 0.0) == 0  # "a" is forgotten: capacity 2
    assert once.due("a", 11.0) == 0


def test_the_longest_block_may_not_be_shorter_than_the_shortest(monkeypatch):
    monkeypatch.setenv("THROTTLED_BLOCK_DURATION", "P14D")
    monkeypatch.setenv("THROTTLED_BLOCK_MAX", "P10D")
    with pytest.raises(SettingsError, match=r"THROTTLED_BLOCK_MAX \(P10D\) must be at least THROTTLED_BLOCK_DURATION \(P14D\)"):
        load_settings()
    monkeypatch.setenv("THROTTLED_BLOCK_MAX", "P3W")
    limits = load_settings().block_limits
    assert (limits.shortest.days, limits.longest.days) == (14, 21)


def test_block_settings_take_lower_case_designators(monkeypatch):
    monkeypatch.setenv("THROTTLED_BLOCK_DURATION", "p2d")
    monkeypatch.setenv("THROTTLED_BLOCK_MAX", " p3wt12h ")
    settings = load_settings()
    assert (settings.block_duration, settings.block_max) == ("P2D", "P3WT12H")
