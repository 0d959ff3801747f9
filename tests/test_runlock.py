"""One ``bench run`` per run directory: a second is refused at once naming the holder; a dead holder's lock is
taken over; runs with different names do not block each other."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.runlock import LOCK_NAME, RunLocked, run_lock

HOLD = "import sys, time; from bench.runlock import run_lock\nwith run_lock(sys.argv[1], 'a'):\n    print('held', flush=True); time.sleep(60)"


def test_a_second_run_is_refused_while_the_first_is_alive_and_takes_over_when_it_died(tmp_path, caplog):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "a")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked) as e:
            with run_lock(tmp_path / "a", "a"):
                pass
        assert f"run a is already running (pid {holder.pid}, since " in str(e.value)
        with run_lock(tmp_path / "b", "b"):  # another run name: its own lock
            assert (tmp_path / "b" / LOCK_NAME).exists()
    finally:
        holder.kill()
        holder.wait()
    assert json.loads((tmp_path / "a" / LOCK_NAME).read_text())["pid"] == holder.pid  # SIGKILL left it behind
    with run_lock(tmp_path / "a", "a"):
        assert "taking over the lock left by pid" in caplog.text
    assert not (tmp_path / "a" / LOCK_NAME).exists()  # released on exit


def test_the_cli_says_so_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from bench.cli import app

    run = tmp_path / "runs" / "locked"
    run.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        config = tmp_path / "run.yaml"
        config.write_text(f"run: locked\nroot: {tmp_path / 'runs'}\nmethods: [sft]\neval_limit: 2\njudge: mimic-gpt4\n")
        result = CliRunner().invoke(app, ["run", "all", "--config", str(config)])
        text = " ".join(result.output.split())
        assert result.exit_code == 2 and "run locked is already running" in text and f"pid {holder.pid}" in text, text
        assert not (run / "checkpoints").exists()  # refused before any work
    finally:
        holder.kill()
        holder.wait()
