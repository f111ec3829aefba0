"""`--help` on every subcommand prints its usage and exits 0, running nothing (`sqlft info --help` once ran info)."""

import subprocess
import sys

import pytest

from sqlft import cli


@pytest.mark.parametrize("argv", [[name] for name in cli.COMMANDS] + [["eval", "compare"], ["config", "import"]])
def test_help_prints_usage_and_runs_nothing(argv, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([*argv, "--help"])
    assert done.value.code in (0, None)
    out = capsys.readouterr().out
    assert out.startswith(f"usage: sqlft {' '.join(argv)}"), out[:200]
    assert "cache (SQLFT_CACHE)" not in out  # info's own output: the command did not run


def test_top_level_help_lists_every_command(capsys):
    cli.main(["--help"])
    out = capsys.readouterr().out
    assert all(f"sqlft {name}" in out for name in cli.COMMANDS)


def test_console_script_help():
    """The installed `sqlft` entry point, as a user types it."""
    done = subprocess.run([sys.executable, "-m", "sqlft.cli", "info", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage: sqlft info"), done.stdout + done.stderr


def test_stray_argument_is_an_error(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["info", "--verbose"])
    assert done.value.code == 2 and "unrecognized arguments: --verbose" in capsys.readouterr().err
