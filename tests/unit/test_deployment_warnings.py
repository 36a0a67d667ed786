"""``config check`` and ``run`` warn about settings that work but are not production's."""

from __future__ import annotations

from click.testing import CliRunner

from throttled.cli import main
from throttled.crypto import generate_key
from throttled.settings import load_settings
from throttled.settings_rules import deployment_warnings

GOOD = {"hubspot_client_secret": "5b4c3d2e-1f00-4a1b-9c8d-7e6f5a4b3c2d", "public_url": "https://throttle.example.com"}


def _warnings(**settings) -> list[str]:
    return deployment_warnings(load_settings(**(GOOD | settings)))


def test_a_production_shaped_configuration_warns_of_nothing():
    assert _warnings() == []
    assert _warnings(public_url="http://127.0.0.1:8080") == []  # a local run
    assert _warnings(admin_bind="0.0.0.0:8081", pages_token="p" * 20) == []


def test_each_warning_names_its_variable():
    assert "HUBSPOT_CLIENT_SECRET" in _warnings(hubspot_client_secret="change-me")[0]
    assert "HUBSPOT_CLIENT_SECRET" in _warnings(hubspot_client_secret="replace-with-the-apps-client-secret")[0]
    assert "THROTTLED_PUBLIC_URL is unset" in _warnings(public_url=None)[0]
    assert "https" in _warnings(public_url="http://throttle.example.com")[0]
    assert "THROTTLED_PAGES_TOKEN" in _warnings(admin_bind="0.0.0.0:8081")[0]


def test_config_check_prints_them_and_still_exits_0():
    env = {"HUBSPOT_CLIENT_SECRET": "change-me", "THROTTLED_ADMIN_BIND": "0.0.0.0:8081",
           "THROTTLED_ENCRYPTION_KEYS": None, "THROTTLED_ENCRYPTION_KEY": generate_key(), "THROTTLED_PUBLIC_URL": None}
    result = CliRunner().invoke(main, ["config", "check"], env=env)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 3, result.output


def test_operator_commands_never_create_an_embedded_database(tmp_path):
    env = {"THROTTLED_DATABASE_URL": None, "THROTTLED_DATA_DIR": str(tmp_path / "data")}
    for command in (["queues", "list"], ["jobs", "list"], ["portals", "list"], ["migrate"]):
        result = CliRunner().invoke(main, command, env=env)
        assert result.exit_code == 1, (command, result.output)
        assert "THROTTLED_DATABASE_URL" in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "data" / "pg").exists()
