"""`bench run`'s console: third-party output goes to the run's logs/<stage>.log, the terminal gets one line per
step and stage (plain, no escape codes, when it is not a terminal), a failure shows the tail of the stage's log;
`bench status` tells done / stale (and why) / to do / running apart."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from bench.console import RunConsole, progress
from bench.stages import STAGES, RunConfig, run_all
from bench.status import stage_table


class NoisyStage:
    """Writes the way vLLM and its workers do (file descriptors 1 and 2, a child process), logs one step summary."""

    NAME, DEPENDS = "noisy", ("eval_limit",)

    def __init__(self, fail: bool = False):
        self.fail = fail

    def reads(self, run):
        return [run.dir / "in.txt"]

    def writes(self, run):
        return [run.dir / "out.txt"]

    def run(self, run):
        os.write(1, b"INFO vllm engine started\n")
        os.write(2, b"Loading weights: 100%|##########| 30/30\n")
        subprocess.run([sys.executable, "-c", "print('a worker process says hello')"], check=True)
        for i in range(3):
            progress("noisy: items", i + 1, 3)
        progress("noisy: items", 3, 3)  # reported again (a trainer's final log): not printed twice
        logging.getLogger("bench.run").info("[noisy] figa seed 0: 3 items")
        if self.fail:
            os.write(2, b"\r  0%|          | 0/2\r 50%|#####     | 1/2\r100%|##########| 2/2\n")
            os.write(2, b"RuntimeError: the engine died (details here)\n")
            raise RuntimeError("stage failed")
        (run.dir / "out.txt").write_text("done")


@pytest.fixture
def noisy_run(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="bench")
    run = RunConfig(run="r", root=str(tmp_path))
    run.dir.mkdir(parents=True)
    (run.dir / "in.txt").write_text("a")
    return run


def test_third_party_output_goes_to_the_log_and_the_console_prints_plain_lines(noisy_run, monkeypatch):
    monkeypatch.setitem(STAGES, "noisy", NoisyStage())
    out = io.StringIO()  # not a terminal: CI, a pipe
    with RunConsole(noisy_run.dir, file=out):
        run_all(noisy_run, ["noisy"])
    shown = out.getvalue()
    assert "\x1b[" not in shown  # no escape codes
    assert "▶ noisy" in shown and "✓ noisy done in" in shown and "[noisy] figa seed 0: 3 items" in shown
    assert shown.count("noisy: items: 3/3") == 1  # progress, as one plain line at the end of the loop
    assert "vllm engine started" not in shown and "Loading weights" not in shown and "worker process" not in shown
    log = (noisy_run.dir / "logs" / "noisy.log").read_text()
    assert "INFO vllm engine started" in log and "Loading weights: 100%" in log and "a worker process says hello" in log
    assert not (noisy_run.dir / "stages" / "noisy.running").exists()


def test_a_failing_stage_shows_the_end_of_its_log(noisy_run, monkeypatch):
    monkeypatch.setitem(STAGES, "noisy", NoisyStage(fail=True))
    out = io.StringIO()
    with pytest.raises(RuntimeError), RunConsole(noisy_run.dir, file=out):
        run_all(noisy_run, ["noisy"])
    shown = out.getvalue()
    assert "✗ noisy failed" in shown and "logs/noisy.log" in shown
    assert "RuntimeError: the engine died (details here)" in shown  # the cause is on screen
    assert "100%|##########| 2/2" in shown and "50%|" not in shown  # a redrawn bar: its last state only
    assert "\x1b[" not in shown
    os.write(2, b"")  # file descriptors 1 and 2 are back where they were
    assert os.fstat(2) and not (noisy_run.dir / "stages" / "noisy.running").exists()


def test_status_says_done_stale_and_why_to_do(noisy_run, monkeypatch):
    monkeypatch.setitem(STAGES, "noisy", NoisyStage())
    with RunConsole(noisy_run.dir, file=io.StringIO()):
        run_all(noisy_run, ["noisy"])
    rows = {r["stage"]: r for r in stage_table(noisy_run)}
    assert rows["noisy"]["state"] == "done" and rows["noisy"]["seconds"] is not None
    assert rows["train"]["state"] == "to do" and rows["train"]["why"] == "never finished"
    (noisy_run.dir / "in.txt").write_text("changed")
    noisy_run.eval_limit = 7
    row = next(r for r in stage_table(noisy_run) if r["stage"] == "noisy")
    assert row["state"] == "stale" and "eval_limit: 100 -> 7" in row["why"] and "in.txt changed" in row["why"]


def test_status_shows_a_running_stage(noisy_run, monkeypatch):
    from bench.runlock import LOCK_NAME
    from bench.procs import identity

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:  # a live bench run (another process) holds the lock and is inside the judge stage
        (noisy_run.dir / LOCK_NAME).write_text(json.dumps({"pid": child.pid, "started": identity(child.pid)[1]}))
        (noisy_run.dir / "stages").mkdir()
        (noisy_run.dir / "stages" / "judge.running").write_text(json.dumps({"pid": child.pid}))
        rows = {r["stage"]: r["state"] for r in stage_table(noisy_run)}
        assert rows["judge"] == "running" and rows["train"] == "to do"
    finally:
        child.kill()
        child.wait()
    assert {r["stage"]: r["state"] for r in stage_table(noisy_run)}["judge"] == "to do"  # its process is gone


def test_bench_status_command_prints_the_table(tmp_path, monkeypatch):
    from bench.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.yaml").write_text("run: partly\nmethods: [figa]\n")
    result = CliRunner().invoke(app, ["status", "run.yaml"])
    assert result.exit_code == 0, result.output
    assert "run partly" in result.output and "to do" in result.output and "never finished" in result.output
    result = CliRunner().invoke(app, ["status", "nope"])
    assert result.exit_code == 2 and "no run 'nope'" in result.output


@pytest.mark.parametrize("rank, shown", [("0", ["a warning", "an error"]), ("1", ["an error"])])
def test_under_a_launcher_only_rank_0_logs_warnings(rank, shown):
    """Every rank of ``accelerate launch`` runs the whole command: rank 0 alone tells what happens (a sweep-record
    or config warning once, not once per process); the other ranks still show their errors."""
    code = ("import logging\nfrom bench.cli_common import _setup\n_setup(verbose=False)\n"
            "logging.getLogger('bench').warning('a warning')\nlogging.getLogger('bench').error('an error')")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "RANK": rank}, capture_output=True,
                         text=True, check=True).stderr
    assert [m for m in ("a warning", "an error") if m in out] == shown
