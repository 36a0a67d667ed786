"""Id options and arguments of the CLI: their range reads short, in the help and in the error."""

from __future__ import annotations

from click.testing import CliRunner

from throttled.cli import main


def test_an_id_option_shows_its_range_without_nineteen_digits():
    result = CliRunner().invoke(main, ["queues", "list", "--help"])
    assert result.exit_code == 0
    assert "[1<=x<2^63]" in result.output and "9223372036854775807" not in result.output, result.output


def test_an_id_out_of_range_is_refused_with_that_range_before_any_database_work():
    for bad in ("0", str(2**63)):
        result = CliRunner().invoke(main, ["queues", "list", "--portal", bad])
        assert result.exit_code == 2, result.output
        assert f"{bad} is not in the range 1<=x<2^63" in result.output, result.output
