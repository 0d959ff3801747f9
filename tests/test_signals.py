"""What ``bench`` starts dies with it, SIGINT and SIGTERM stop it alike, one trainer per checkpoint directory.

The first tests need no vLLM (a watchdog over ``sleep`` processes, the lock's take-over, two trainers on the
tiny model); the ``vllm`` ones SIGKILL, SIGTERM and SIGINT a real ``bench run`` on the tiny model during its
generate stage, and SIGKILL ``bench serve``. No test depends on timings beyond generous waits.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

BENCH = str(Path(sys.executable).parent / "bench")
vllm = pytest.mark.vllm


def _env(tmp_path: Path) -> dict:
    root = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "250", "BENCH_CACHE": str(tmp_path / "cache"),
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait(condition, timeout: float, what: str, poll: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"gave up waiting: {what}")


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `cmd &` in a script starts it


# -- the mechanism, without vLLM ------------------------------------------------------------------------------

PARENT = """
import subprocess, sys, time
from bench.procs import lifeline
lifeline()
child = subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300 & wait"])   # a child and two grandchildren
print(child.pid, flush=True)
time.sleep(300)
"""


def test_what_a_sigkilled_process_started_is_ended_by_its_watchdog(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=_env(tmp_path))
    int(parent.stdout.readline())

    def sleeps():
        found = [p for p in psutil.Process(parent.pid).children(recursive=True) if p.name() == "sleep"]
        return found if len(found) == 2 else None

    kids = _wait(sleeps, 30, "the two sleeps")
    time.sleep(1.5)  # the watchdog records the tree twice a second
    parent.kill()
    parent.wait()
    _wait(lambda: not any(_running(p) for p in kids), 30, "the watchdog to end the dead parent's processes")


HOLDER = """
import subprocess, sys, time
from bench.runlock import run_lock
with run_lock(sys.argv[1], "r"):
    child = subprocess.Popen(["sleep", "300"])
    print(child.pid, flush=True)
    time.sleep(300)
"""


def test_taking_over_a_dead_runs_lock_ends_its_survivors_and_only_those(tmp_path, caplog):
    from bench.runlock import LOCK_NAME, run_lock

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True, env=_env(tmp_path))
    survivor = psutil.Process(int(holder.stdout.readline()))
    lock = run / LOCK_NAME
    _wait(lambda: [survivor.pid, survivor.create_time()] in json.loads(lock.read_text())["children"], 30,
          "the lock to record the child")
    stranger = subprocess.Popen(["sleep", "300"])  # not the run's: recorded under its pid with another start time
    doc = json.loads(lock.read_text())
    doc["children"].append([stranger.pid, psutil.Process(stranger.pid).create_time() - 100])
    lock.write_text(json.dumps(doc))
    holder.kill()  # no handler runs, no watchdog was started: the sleep survives its run
    holder.wait()
    try:
        assert _running(survivor)
        with run_lock(run, "r"):
            assert not _running(survivor)
            assert stranger.poll() is None  # a pid alone proves nothing
        assert f"ended 1 of its processes still running (pids {survivor.pid})" in caplog.text
    finally:
        stranger.kill()
        stranger.wait()


def test_handle_signals_raises_the_signal_as_an_interrupt_with_its_exit_status():
    from bench.procs import Interrupted, exit_code, handle_signals

    before = signal.getsignal(signal.SIGTERM)
    for sig, status in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        with pytest.raises(Interrupted) as e:
            with handle_signals():
                os.kill(os.getpid(), sig)
                time.sleep(5)
        assert exit_code(e.value) == status
    assert signal.getsignal(signal.SIGTERM) == before  # restored


def test_a_signal_another_thread_receives_still_interrupts_the_main_thread_blocked_in_a_system_call():
    """vLLM's start-up waits in one long ``zmq_poll``; the kernel handed Ctrl-C to one of ZeroMQ's threads and
    Python's handler waited for that poll to end (600 s). Here the main thread sleeps in the kernel while
    another thread takes SIGTERM."""
    import threading

    from bench.procs import Interrupted, handle_signals

    def other_thread():
        time.sleep(0.5)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # lands on this thread, not the main one

    t0 = time.time()
    with pytest.raises(Interrupted):
        with handle_signals():
            threading.Thread(target=other_thread).start()
            time.sleep(120)
    assert time.time() - t0 < 120  # the sleep was cut short, not waited out


def _exit_at_once():
    pass


def test_finished_multiprocessing_children_are_reaped():
    """vLLM's engine processes are multiprocessing children: ``reap`` (called by ``Engine.close``) collects them."""
    import multiprocessing

    from bench.procs import reap

    child = multiprocessing.get_context("spawn").Process(target=_exit_at_once)
    child.start()
    _wait(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE, 60, "the child to finish")
    reap()
    assert not psutil.pid_exists(child.pid)  # no <defunct> left


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    rows = [{"q": f"Question {i}?", "a": f"An answer {i}.", "b": f"A better answer number {i}."} for i in range(16)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f"{path}?prompt=q&initial=a&revised=b"


def test_a_second_trainer_into_one_directory_is_refused_and_sigint_stops_the_first(tmp_path, tiny_model_dir, pairs):
    """The first trainer starts with SIGINT ignored (as a background job of a script): it is still interrupted."""
    out = tmp_path / "ckpt"
    args = [BENCH, "train", "sft", "--model", tiny_model_dir, "--data", pairs, "--output-dir", str(out),
            "--max-steps", "100000", "--set", "save_steps=100000", "--set", "max_length=64"]
    log = tmp_path / "first.log"
    first = subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=_env(tmp_path),
                             preexec_fn=_ignore_sigint)
    try:
        _wait(lambda: (out / "train_log.jsonl").exists() or first.poll() is not None, 300, "the first trainer's steps")
        assert first.poll() is None, log.read_text()[-3000:]
        second = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(tmp_path),
                                timeout=300)
        text = " ".join(second.stdout.split())
        assert second.returncode == 2, text
        assert f"training into {out} is already running (pid {first.pid}, since " in text and "Traceback" not in text
        first.send_signal(signal.SIGINT)
        assert first.wait(120) == 130, log.read_text()[-3000:]
        assert "run the same command again to resume" in log.read_text()
        assert not (out / ".bench_train.lock").exists()  # released
    finally:
        first.kill()


# -- a real bench run and bench serve on the tiny model ---------------------------------------------------------

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_model_dir, pairs):
    """A run YAML whose train stage is done (the next stage is generate), and a way to start it fresh."""
    base = tmp_path_factory.mktemp("signals")
    prompts = base / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Tell me about number {i}.", "reference": f"It is {i}."}) + "\n"
                               for i in range(6)))
    config = base / "run.yaml"
    config.write_text(json.dumps({"run": "sig", "root": str(base / "runs"), "model": tiny_model_dir, "data": pairs,
                                  "methods": ["sft"], "seeds": [0], "eval_set": str(prompts), "eval_limit": 6,
                                  "max_new_tokens": 32, "judge": "mimic-gpt4", "controls": {"null": "I don't know."},
                                  "budget": {"max_steps": 1, "batch_size": 2, "max_length": 64, "limit": 4}}))
    done = subprocess.run([BENCH, "run", "train", "--config", str(config)], capture_output=True, text=True,
                          env=_env(base), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    return config, base / "runs" / "sig", base


def _start_run(config: Path, base: Path, name: str, *args: str, **kw) -> tuple[subprocess.Popen, Path]:
    """``bench run ARGS`` with its output in a file (vLLM logs a lot: an unread pipe would fill and block it)."""
    log = base / f"{name}.log"
    proc = subprocess.Popen([BENCH, "run", *args, "--config", str(config)], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, env=_env(base), **kw)
    return proc, log


def _fresh_generate(run_dir: Path) -> None:
    """Forget the generate stage and everything after it, so the next run starts an engine."""
    import shutil

    for name in ("generations", "judged", "suite"):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    for stage in ("generate", "judge", "suite", "report"):
        (run_dir / "stages" / f"{stage}.json").unlink(missing_ok=True)


def _engine_started(proc: subprocess.Popen, log: Path) -> list[psutil.Process]:
    """The run's processes once vLLM's worker exists (the engine is starting), every one of them."""
    def ready():
        assert proc.poll() is None, log.read_text()[-3000:]
        tree = psutil.Process(proc.pid).children(recursive=True)
        names = []
        for p in tree:
            try:
                names.append(" ".join(p.cmdline()))
            except psutil.Error:
                pass
        return tree if any("VLLM::Worker" in n for n in names) else None

    return _wait(ready, 600, "vLLM's worker process")


@vllm
def test_sigkill_during_generate_leaves_no_process_and_the_rerun_takes_over(trained_run):
    config, run_dir, base = trained_run
    _fresh_generate(run_dir)
    proc, log = _start_run(config, base, "killed", "all")
    _engine_started(proc, log)
    time.sleep(1.5)  # recorded by the watchdog
    tree = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()
    proc.wait()
    _wait(lambda: not any(_running(p) for p in tree), 60, "every process of the killed run to end")
    again = subprocess.run([BENCH, "run", "generate", "--config", str(config)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=_env(base), timeout=900)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "taking over the lock left by pid" in " ".join(again.stdout.split())
    assert (run_dir / "generations" / "sft" / "seed-0" / "generations.jsonl").exists()


@vllm
def test_sigterm_during_generate_exits_143_releasing_lock_and_engine(trained_run):
    config, run_dir, base = trained_run
    _fresh_generate(run_dir)
    proc, log = _start_run(config, base, "terminated", "generate")
    tree = _engine_started(proc, log)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(180) == 143, log.read_text()[-3000:]
    assert not (run_dir / ".bench_run.lock").exists()
    assert "run the same command again to resume" in log.read_text()
    _wait(lambda: not any(_running(p) for p in tree), 60, "the engine's processes to end")


@vllm
def test_sigint_during_engine_start_up_stops_the_run_even_when_started_with_sigint_ignored(trained_run):
    config, run_dir, base = trained_run
    _fresh_generate(run_dir)
    proc, log = _start_run(config, base, "interrupted", "all", preexec_fn=_ignore_sigint)
    tree = _engine_started(proc, log)  # vLLM is starting: the run must not carry on into judge and suite
    proc.send_signal(signal.SIGINT)
    assert proc.wait(180) == 130, log.read_text()[-3000:]
    assert not (run_dir / "stages" / "generate.json").exists() and not (run_dir / "judged").exists()
    assert not (run_dir / ".bench_run.lock").exists()
    _wait(lambda: not any(_running(p) for p in tree), 60, "the engine's processes to end")


@vllm
def test_sigkill_of_bench_serve_frees_its_port(trained_run, tiny_model_dir):
    _, _, base = trained_run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def answers():
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    log = base / "serve.log"
    proc = subprocess.Popen([BENCH, "serve", tiny_model_dir, "--port", str(port)], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, env=_env(base))
    _wait(lambda: proc.poll() is not None or "serving" in log.read_text(), 600, "the server")
    assert answers()
    assert proc.poll() is None, log.read_text()[-3000:]
    time.sleep(1.5)  # recorded by the watchdog
    proc.kill()
    proc.wait()
    _wait(lambda: not answers(), 60, f"port {port} to be free")


def test_a_command_started_with_sigint_blocked_still_stops_on_it(tmp_path):
    """A blocked signal mask is inherited across fork and exec (a parent that blocked SIGINT, a library's
    thread): ``handle_signals`` unblocks SIGINT and SIGTERM, or a Ctrl-C would stay pending for ever."""
    code = "import time\nfrom bench.procs import handle_signals\nwith handle_signals():\n    time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], env=_env(tmp_path), stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}))
    time.sleep(3)  # inside the block
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(15)
    finally:
        proc.kill()
    assert "Interrupted: SIGINT" in proc.stderr.read()


LINGERING = """
import sys, threading, time
from bench import cli, procs
procs.EXIT_WITHIN = 1.0

@cli.app.command("linger")
@cli.fail_cleanly
def linger():
    threading.Thread(target=time.sleep, args=(3600,)).start()  # not a daemon: Python's shutdown joins it
    print("ready", flush=True)
    time.sleep(3600)

sys.argv = ["bench", "linger"]
cli.main()
"""


def test_an_interrupted_command_exits_though_a_library_thread_still_waits(tmp_path):
    """A library thread left waiting (vLLM's start-up cut short) held an interrupted ``bench run`` in Python's
    shutdown for minutes after it had said "interrupted": the program exits 130 all the same."""
    proc = subprocess.Popen([sys.executable, "-c", LINGERING], env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130
        assert "interrupted" in proc.stdout.read()
    finally:
        proc.kill()
