"""`throttled config check`: validates settings without starting, never prints a secret."""

import re

from click.testing import CliRunner

from throttled.cli import main
from throttled.crypto import generate_key
from throttled.settings import ENV_NAMES


def _env(**extra):
    env = dict.fromkeys(ENV_NAMES.values())
    env.update(extra)
    return env


def test_good_settings_print_values_but_no_secret():
    key = generate_key()
    result = CliRunner().invoke(main, ["config", "check"], env=_env(
        HUBSPOT_CLIENT_SECRET="very-secret-value", THROTTLED_ENCRYPTION_KEY=key,
        THROTTLED_DATABASE_URL="postgresql://u:hunter2@db.example:5432/t"))
    assert result.exit_code == 0, result.output
    assert "config OK" in result.output and "THROTTLED_BIND" in result.output
    for secret in ("very-secret-value", key, "hunter2"):
        assert secret not in result.output
    # A fresh-user trial: the URL came out as SQLAlchemy's "postgresql+psycopg://", and one long
    # variable name pushed its value out of the column.
    assert "THROTTLED_DATABASE_URL" in result.output and "postgresql://u:***@db.example:5432/t" in result.output
    lines = result.output.splitlines()
    starts = {m.end() for line in lines if (m := re.match(r"(THROTTLED|HUBSPOT)_[A-Z_]+ +", line))}
    starts |= {line.index("current") for line in lines if line.startswith("key ring")}
    assert len(starts) == 1, lines


def test_bad_setting_is_one_line_and_exit_2():
    result = CliRunner().invoke(main, ["config", "check"], env=_env(
        HUBSPOT_CLIENT_SECRET="x", THROTTLED_ENCRYPTION_KEY=generate_key(), THROTTLED_WORKERS="0"))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["throttled: error: THROTTLED_WORKERS: must be at least 1"]


def test_config_set_without_options_names_the_options_it_needs():
    # A new-user trial: the error named a `--body` option that does not exist.
    result = CliRunner().invoke(main, ["config", "set", "62515", "1"], env=_env(
        THROTTLED_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none"))
    assert result.exit_code == 2
    assert "--max-throughput" in result.output and "--body" not in result.output


def test_ids_past_a_bigint_are_a_usage_error_not_a_traceback():
    # A second trial: a 20-digit portal id reached the database and ended in a traceback.
    for args in (["config", "set", "99999999999999999999999", "1", "--mode", "smooth"],
                 ["config", "get", "0", "1"], ["jobs", "retry", "9223372036854775808"]):
        result = CliRunner().invoke(main, args, env=_env(THROTTLED_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none"))
        assert result.exit_code == 2 and "Traceback" not in result.output, (args, result.output)
        assert "range" in result.output


def test_a_lease_shorter_than_a_call_is_refused_by_config_check_and_run():
    # Field faults, item 4: a 6 s release lease with the default 10 s HubSpot timeout passed
    # `config check` and sent 11 of 20 callbacks twice with HubSpot answering after 9 s.
    env = _env(HUBSPOT_CLIENT_SECRET="x", THROTTLED_ENCRYPTION_KEY=generate_key(), THROTTLED_RELEASE_LEASE="6",
               THROTTLED_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    for command in (["config", "check"], ["run"]):
        result = CliRunner().invoke(main, command, env=env)
        assert result.exit_code == 2, (command, result.output)
        [line] = result.output.strip().splitlines()
        assert "THROTTLED_RELEASE_LEASE (6 s)" in line and "THROTTLED_HUBSPOT_TIMEOUT" in line and "22 s" in line
    fine = CliRunner().invoke(main, ["config", "check"], env=env | {"THROTTLED_HUBSPOT_TIMEOUT": "2"})
    assert fine.exit_code == 0, fine.output


def test_one_address_for_both_listeners_is_refused():
    env = _env(HUBSPOT_CLIENT_SECRET="x", THROTTLED_ENCRYPTION_KEY=generate_key(),
               THROTTLED_BIND="127.0.0.1:9000", THROTTLED_ADMIN_BIND="127.0.0.1:9000")
    result = CliRunner().invoke(main, ["config", "check"], env=env)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        ("throttled: error: THROTTLED_BIND and THROTTLED_ADMIN_BIND are both 127.0.0.1:9000: "
         "the admin listener needs an address of its own")]


def test_keys_generate_refuses_an_id_the_ring_would_refuse():
    # A new-user trial: `keys generate --id "bad:id"` printed an entry the daemon then rejected.
    refused = CliRunner().invoke(main, ["keys", "generate", "--id", "bad:id"])
    assert refused.exit_code == 2 and "must be 1-32 letters" in refused.output
    entry = CliRunner().invoke(main, ["keys", "generate", "--id", "k2026-11"])
    assert entry.exit_code == 0 and entry.output.startswith("k2026-11:")


def test_a_demo_of_no_enrollments_is_a_usage_error():
    # Found by a fresh-user trial: `throttled demo --enrollments -5` printed "sent 0 … OK".
    for bad in ("0", "-5"):
        result = CliRunner().invoke(main, ["demo", "--enrollments", bad])
        assert result.exit_code == 2, result.output
        assert "--enrollments" in result.output
