"""The shipped unit file: systemd accepts it and rates its exposure 2.0 or better."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "throttled.service"
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed here")


def _local_copy(tmp_path: Path, unit: Path = UNIT) -> Path:
    """``unit`` with ExecStart pointing at this checkout's throttled (verify checks it exists)."""
    executable = Path(sys.executable).with_name("throttled")
    text = unit.read_text().replace("/opt/throttled/.venv/bin/throttled", str(executable))
    text = re.sub(r"^EnvironmentFile=.*$", f"EnvironmentFile=-{tmp_path / 'env'}", text, flags=re.M)
    copy = tmp_path / unit.name
    copy.write_text(text)
    return copy


def test_unit_verifies(tmp_path):
    result = subprocess.run([ANALYZE, "verify", str(_local_copy(tmp_path))], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_unit_exposure_is_2_or_better(tmp_path):
    result = subprocess.run([ANALYZE, "security", "--offline=true", str(_local_copy(tmp_path))],
                            capture_output=True, text=True)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout[-500:]
    assert float(match.group(1)) <= 2.0


def test_unit_speaks_notify_with_a_watchdog():
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "User=throttled", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "CapabilityBoundingSet=", "SystemCallFilter=@system-service"):
        assert line in text, line


def test_a_settings_error_stops_the_unit_instead_of_a_restart_loop():
    # `run` exits 2 on a bad setting (throttled/cli/common.py); restarting cannot fix that.
    from click.testing import CliRunner

    from throttled.cli import main

    assert "RestartPreventExitStatus=2" in UNIT.read_text()
    result = CliRunner().invoke(main, ["run"], env={"THROTTLED_BIND": "nonsense", "HUBSPOT_CLIENT_SECRET": "s" * 24})
    assert result.exit_code == 2, result.output


def test_the_environment_example_names_only_real_settings_and_the_key_ring():
    from throttled.settings import ENV_NAMES

    example = UNIT.with_name("throttled.env.example").read_text()
    names = re.findall(r"^#?([A-Z][A-Z0-9_]+)=", example, flags=re.M)
    assert set(names) <= set(ENV_NAMES.values()), set(names) - set(ENV_NAMES.values())
    assert "THROTTLED_ENCRYPTION_KEYS" in names and "THROTTLED_ADMIN_TOKEN" in names
    assert "THROTTLED_ENCRYPTION_KEY=" not in example  # the legacy single key


TEMPLATE = UNIT.with_name("throttled@.service")


def test_the_per_core_template_is_the_unit_plus_a_shared_port_and_its_own_admin_port():
    """``throttled@.service`` (one daemon per core sharing the port) must not drift from the
    hardened unit: it differs by comments, its description and two Environment lines only."""
    def settings(path: Path) -> list[str]:
        return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]

    unit, template = settings(UNIT), settings(TEMPLATE)
    added = [line for line in template if line not in unit]
    description = "Description=throttled %i - HubSpot Throttle workflow action back end (one of several sharing the port)"
    assert sorted(added) == sorted([description, "Environment=THROTTLED_REUSE_PORT=true",
                                    "Environment=THROTTLED_ADMIN_BIND=127.0.0.1:91%i"])
    assert [line for line in unit if line not in template] == [line for line in unit if line.startswith("Description=")]


def test_the_per_core_template_verifies(tmp_path):
    result = subprocess.run([ANALYZE, "verify", str(_local_copy(tmp_path, TEMPLATE))], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
