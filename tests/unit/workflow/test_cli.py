"""The command line without a run: one import name, `python -m rasterflow`, site listing, and
exit 2 for a bad config or nothing to do."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from rasterflow.workflow.cli import main


def test_one_import_name(tmp_path):
    """Installed, rasterflow is `rasterflow.*` only: the generic bare names stay free."""
    code = ("import importlib.util as u, rasterflow, rasterflow.workflow.cli; "
            "print(rasterflow.__version__, [u.find_spec(n) for n in "
            "('workflow', 'executors', 'rasterize_core')])")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(" ", 1)[1].strip() == "[None, None, None]"


def test_python_dash_m_is_the_cli(tmp_path):
    done = subprocess.run([sys.executable, "-m", "rasterflow", "sites"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "local local" in done.stdout


ENTRY = """
import atexit, sys, threading, time
atexit.register(print, "exit handlers ran")
if sys.argv[1] == "thread":  # a thread still working when the command is done
    threading.Thread(target=lambda: (time.sleep(0.5), print("thread finished"))).start()
sys.argv = ["rasterflow", *sys.argv[2:]]
from rasterflow.workflow.cli import entry
entry()
"""


def run_entry(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", ENTRY, *args], capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_entry_runs_exit_handlers_and_keeps_exit_codes():
    """The command ends without the interpreter's teardown, but not without its exit
    handlers, its exit code or its output; a thread still running is waited for."""
    done = run_entry("-", "sites")
    assert done.returncode == 0 and "local local" in done.stdout
    assert done.stdout.endswith("exit handlers ran\n")
    assert run_entry("-", "no-such-command").returncode == 2
    waited = run_entry("thread", "sites")
    assert waited.returncode == 0 and "thread finished" in waited.stdout
    assert "exit handlers ran" in waited.stdout


def test_sites_lists_every_bundled_site():
    result = CliRunner().invoke(main, ["sites"])
    assert result.exit_code == 0
    kinds = {line.split()[0]: line.split()[1] for line in result.output.splitlines()}
    assert kinds["local"] == "local"
    assert {"local", "slurm", "pbs", "globus_compute"} <= set(kinds.values())


def test_cli_bad_config_exits_2(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"z_rnage": [0, 3]}))
    for command in ("plan", "status", "view"):
        result = CliRunner().invoke(main, [command, str(bad)])
        assert result.exit_code == 2, (command, result.output)


def test_cli_plan_with_nothing_staged_exits_2(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"dir_staged": str(tmp_path / "none")}))
    result = CliRunner().invoke(main, ["plan", str(config)])
    assert result.exit_code == 2 and "no staged tiles" in result.output
