"""What `bench run` shows while it works: one line per stage and step, a progress bar with ETA, and nothing else.

vLLM, transformers, lm-eval and tqdm write to the process's stdout/stderr (file descriptors 1 and 2, also from
vLLM's worker processes) and through Python logging; during a stage all of it goes to
``results/runs/<run>/logs/<stage>.log`` (appended, with a header per attempt), so the terminal shows only:

- a live display (a terminal): the stage, what it is doing (method, seed) and a progress bar with ETA, fed by
  ``progress(...)`` calls from the long loops (training steps, prompts generated, answer sets judged);
- one plain line per finished step (``bench.run``'s own log messages) and per finished stage, with its time;
- on a failure, the last lines of the stage's log, so the cause is on screen.

``-v`` shows the third-party output live as well (it is still written to the log). Where the output is not a
terminal (CI, a pipe) there is no live display and no escape codes: plain lines only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections import deque
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

TAIL_LINES = 25
_active: RunConsole | None = None


def progress(what: str, done: int, total: int | None) -> None:
    """Report a long loop's progress (``done`` of ``total`` units of ``what``); a no-op outside ``bench run``."""
    if _active is not None:
        _active.update(what, done, total)


class _Tee:
    """Route file descriptors 1 and 2 through a pipe into ``log`` (and, with ``echo``, to the terminal)."""

    def __init__(self, log_path: Path, terminal_fd: int, echo: bool):
        self.log = open(log_path, "ab")
        self.terminal_fd, self.echo = terminal_fd, echo
        self.tail: deque[bytes] = deque(maxlen=TAIL_LINES)

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = (os.dup(1), os.dup(2))
        read_end, self.write_end = os.pipe()
        os.dup2(self.write_end, 1)
        os.dup2(self.write_end, 2)
        self.reader = threading.Thread(target=self._pump, args=(read_end,), daemon=True, name="bench-log")
        self.reader.start()
        return self

    def _pump(self, fd: int) -> None:
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            for line in iter(pipe.readline, b""):
                self.log.write(line)
                self.log.flush()
                self.tail.append(line)
                if self.echo:
                    os.write(self.terminal_fd, line)

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in (*self.saved, self.write_end):
            os.close(fd)
        self.reader.join(timeout=5)  # a leftover child still holding the pipe must not hang the run
        self.log.close()


def _as_shown(line: bytes) -> str:
    """A log line as a terminal shows it: a progress bar redrawn with carriage returns is its last state."""
    parts = [p for p in line.rstrip(b"\n").split(b"\r") if p.strip()]
    return parts[-1].decode(errors="replace") if parts else ""


class _ToConsole(logging.Handler):
    """bench's own INFO messages (the one-line step summaries) as plain lines on the run console."""

    def __init__(self, console: Console):
        super().__init__(logging.INFO)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.print(f"{time.strftime('%H:%M:%S')}   {record.getMessage()}", highlight=False, markup=False)


class RunConsole:
    """``with RunConsole(run_dir, verbose):`` around ``run_all``; ``step(stage)`` around each stage's work."""

    def __init__(self, run_dir: str | Path, verbose: bool = False, file=None):
        self.logs = Path(run_dir) / "logs"
        self.stages = Path(run_dir) / "stages"
        self.verbose = verbose
        self.terminal_fd = os.dup(2)  # the terminal, kept while fd 2 goes to a log
        out = file or os.fdopen(self.terminal_fd, "w", buffering=1, closefd=False)
        self.console = Console(file=out, highlight=False, soft_wrap=True)  # a long path stays on one line
        self.live = self.console.is_terminal
        self.bar: Progress | None = None
        self.task = None
        self.last_plain: dict[str, tuple[float, int]] = {}

    def __enter__(self):
        global _active
        _active = self
        return self

    def __exit__(self, *exc):
        global _active
        _active = None
        self.console.file.flush()
        os.close(self.terminal_fd)

    def update(self, what: str, done: int, total: int | None) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=what, completed=done, total=total, count=f"{done}/{total or '?'}")
            return
        now, (last_time, last_done) = time.monotonic(), self.last_plain.get(what, (0.0, None))
        if done != last_done and (done == total or now - last_time >= 30):  # plain: now and then, and at the end
            self.last_plain[what] = (now, done)
            self.console.print(f"{time.strftime('%H:%M:%S')}   {what}: {done}/{total if total else '?'}",
                               highlight=False, markup=False)

    @contextlib.contextmanager
    def step(self, stage: str):
        """Run one stage with its output captured in ``logs/<stage>.log``; a line when it ends, its log's tail if it
        fails. ``stages/<stage>.running`` says which stage is at work (``bench status``)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.stages.mkdir(parents=True, exist_ok=True)
        log_path, marker = self.logs / f"{stage}.log", self.stages / f"{stage}.running"
        marker.write_text(json.dumps({"pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}))
        with open(log_path, "ab") as f:
            f.write(f"\n===== {stage}: {time.strftime('%Y-%m-%d %H:%M:%S')} (pid {os.getpid()}) =====\n".encode())
        self.console.print(f"{time.strftime('%H:%M:%S')} ▶ {stage}  (log: {log_path})", highlight=False, markup=False)
        bench_log, handler = logging.getLogger("bench"), _ToConsole(self.console)
        if not self.verbose:  # with -v bench's messages reach the terminal with everything else
            bench_log.addHandler(handler)
        t0 = time.perf_counter()
        tee = _Tee(log_path, self.terminal_fd, self.verbose)
        try:
            with tee, self._bar(stage):
                yield
        except KeyboardInterrupt:  # a signal (bench.procs raises them as interrupts): the user knows why
            self.console.print(f"{time.strftime('%H:%M:%S')} ■ {stage} interrupted after "
                               f"{time.perf_counter() - t0:.0f} s (log: {log_path})", highlight=False, markup=False)
            raise
        except BaseException as e:
            lines = "\n".join(_as_shown(line) for line in tee.tail).rstrip()
            self.console.print(f"{time.strftime('%H:%M:%S')} ✗ {stage} failed after {time.perf_counter() - t0:.0f} s "
                               f"({type(e).__name__}); last lines of {log_path}:", style="bold red", highlight=False,
                               markup=False)
            if lines:
                self.console.print(lines, highlight=False, markup=False)
            raise
        else:
            self.console.print(f"{time.strftime('%H:%M:%S')} ✓ {stage} done in {time.perf_counter() - t0:.0f} s",
                               style="green", highlight=False, markup=False)
        finally:
            bench_log.removeHandler(handler)
            marker.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _bar(self, stage: str):
        if not self.live:
            yield
            return
        self.bar = Progress(TextColumn(f"[bold]{stage}[/] {{task.description}}"), BarColumn(),
                            TextColumn("{task.fields[count]}"), TimeElapsedColumn(), TextColumn("ETA"),
                            TimeRemainingColumn(), console=self.console, transient=True)
        self.task = self.bar.add_task("starting", total=None, count="")
        try:
            with self.bar:
                yield
        finally:
            self.bar, self.task = None, None


@contextlib.contextmanager
def step(stage: str):
    """``RunConsole.step`` of the active console; nothing (output as before) outside ``bench run``'s console."""
    if _active is None:
        yield
    else:
        with _active.step(stage):
            yield
