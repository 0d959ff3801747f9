"""What ``bench`` starts dies with it, and SIGINT and SIGTERM stop it the same way.

**Children die with their parent (Linux).** vLLM starts its EngineCore, worker and a resource tracker with
multiprocessing's spawn, ``bench serve`` starts an api_server in its own session; none of them notices when
the ``bench`` process is killed (SIGKILL runs no handler), so they used to keep running, ~4.7 GB each, one
still answering on its port. The mechanism is a **watchdog**: before the first child is started, ``lifeline``
starts one small process (``python -m bench.procs``, in its own session, so a Ctrl-C or a group kill aimed
at ``bench`` does not reach it). Twice a second it records every descendant of ``bench`` with its start
time; once ``bench`` has ended, however it ended, it sends SIGTERM to the recorded processes still running
(the same pid *and* start time: proof that they are ours, never a recycled pid), then SIGKILL after a grace,
and exits. We chose it over PR_SET_PDEATHSIG because that must be set inside each child (vLLM's are not
ours to change) and fires when the forking *thread* exits; a process group is not ours to take either
(``bench`` in a terminal must stay in the terminal's foreground group). A child started less than half a
second before ``bench`` was SIGKILLed is not yet recorded: that is the gap.

**Signals.** ``handle_signals`` installs the same handler for SIGINT and SIGTERM explicitly (a job started in
the background of a script inherits SIGINT *ignored*, and Python keeps it so); the handler raises
``Interrupted``, a ``KeyboardInterrupt``, so ``with`` blocks shut down what they started and release their
locks, and the CLI exits 128 + the signal (130, 143). A signal that lands on another thread while the main
thread waits in C (vLLM's start-up) is forwarded to it (``handle_signals``), and it is remembered:
``check_interrupted`` raises it again where library code may have swallowed the exception.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("bench.procs")

HANDLED = (signal.SIGINT, signal.SIGTERM)
NUDGE = signal.SIGUSR2  # sent by us to our own main thread only (see handle_signals)
WATCH_INTERVAL = 0.5  # seconds between two records of the process tree
GRACE = 3.0  # seconds between SIGTERM and SIGKILL when ending left-over processes


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``exit_code`` is the shell's convention, 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


_received: int | None = None


def _raise(signum, frame) -> None:
    global _received
    _received = signum
    raise Interrupted(signum)


def check_interrupted() -> None:
    """Raise ``Interrupted`` again if a signal arrived (in case the code it interrupted swallowed it)."""
    if _received is not None:
        raise Interrupted(_received)


_insisting = threading.Event()


def _nudge(signum, frame) -> None:
    """The handler of ``NUDGE``: it ends the main thread's blocking system call; inside ``insisting`` it raises
    the signal that arrived again."""
    if _insisting.is_set() and _received is not None:
        raise Interrupted(_received)


def _forward(wakeups: socket.socket, main: int) -> None:
    """Nudge the main thread whenever SIGINT or SIGTERM arrived (inside ``insisting``: every second until it
    has left that block), until ``wakeups`` is closed."""
    wakeups.settimeout(None)
    while True:
        try:
            data = wakeups.recv(64)
        except TimeoutError:
            data = b"\x00"
        except OSError:
            return
        if not data:
            return
        if any(b in HANDLED for b in data) or (_insisting.is_set() and _received is not None):
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pthread_kill(main, NUDGE)
        wakeups.settimeout(1.0 if _insisting.is_set() and _received is not None else None)


@contextlib.contextmanager
def insisting() -> Iterator[None]:
    """Around library code that swallows ``KeyboardInterrupt`` (vLLM's engine start-up waited out its 600 s
    ready poll after a Ctrl-C): once a signal has arrived it is raised in the main thread again every second
    until the block is left."""
    _insisting.set()
    try:
        yield
    finally:
        _insisting.clear()


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise ``Interrupted`` inside the block (handlers installed explicitly, the previous
    ones restored after). Wrap a command's body in it; outside the main thread it does nothing.

    Python runs a handler in the main thread only, once that thread runs Python again; the kernel may hand
    the signal to any thread (vLLM's start-up leaves the main thread in a 600 s ``zmq_poll`` while ZeroMQ's
    threads take the signal: a Ctrl-C was lost there). So a helper thread reads the signal module's wakeup
    fd and sends the main thread ``NUDGE``, whose no-op handler interrupts the system call; Python then runs
    the pending SIGINT/SIGTERM handler at once."""
    global _received
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received = None
    previous = {s: signal.signal(s, _raise) for s in HANDLED}
    previous[NUDGE] = signal.signal(NUDGE, _nudge)
    # a blocked signal mask is inherited across fork and exec as an ignored SIGINT is: unblock ours (the
    # forwarder thread below inherits this mask)
    previous_mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {*HANDLED, NUDGE})
    wakeups, wakeup_w = socket.socketpair()
    wakeup_w.setblocking(False)
    previous_fd = signal.set_wakeup_fd(wakeup_w.fileno(), warn_on_full_buffer=False)
    forwarder = threading.Thread(target=_forward, args=(wakeups, threading.get_ident()), daemon=True,
                                 name="bench-signals")
    forwarder.start()
    try:
        yield
    except KeyboardInterrupt:
        # what the block's own clean-up left running (vLLM's start-up cut short, a shutdown cut short by a second
        # signal) ends now, not when the interpreter's exit joins it
        end([p for p in descendants() if p[0] not in helpers()])
        raise
    finally:
        signal.set_wakeup_fd(previous_fd)
        wakeup_w.close()  # ends the forwarder
        forwarder.join()
        wakeups.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        _received = None  # handled: a later run_all in this process (a test, a notebook) must not see it again


EXIT_WITHIN = 20.0  # seconds an interrupted command's interpreter may take to shut down before it exits anyway


def exit_within(code: int) -> None:
    """Exit with ``code`` in ``EXIT_WITHIN`` s whatever the interpreter's shutdown is waiting for. Called once an
    interrupted command has shut down what it started: what is left is Python joining threads and running
    ``atexit`` handlers, and a library's thread left waiting on a peer that is gone (vLLM's start-up cut short)
    held an interrupted ``bench run`` there for minutes after it had said "interrupted"."""
    def leave():
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)

    timer = threading.Timer(EXIT_WITHIN, leave)
    timer.daemon = True  # runs while shutdown joins the other threads; never holds the exit itself
    timer.start()


def exit_code(e: BaseException) -> int:
    """130 for Ctrl-C, 143 for SIGTERM."""
    return getattr(e, "exit_code", 128 + signal.SIGINT)


def identity(pid: int) -> list | None:
    """``[pid, start time]`` of a running process: the pair names it for good (a pid alone is recycled)."""
    import psutil

    try:
        return [pid, psutil.Process(pid).create_time()]
    except psutil.Error:
        return None


def is_running(pid: int, started: float | None) -> bool:
    """Whether the process ``[pid, started]`` still runs (not merely another process under its pid)."""
    import psutil

    try:
        p = psutil.Process(pid)
        return p.status() != psutil.STATUS_ZOMBIE and (started is None or abs(p.create_time() - started) < 0.01)
    except psutil.Error:
        return False


def descendants(pid: int | None = None) -> list[list]:
    """``[pid, start time]`` of every living descendant of ``pid`` (default: this process)."""
    import psutil

    try:
        children = psutil.Process(pid or os.getpid()).children(recursive=True)
    except psutil.Error:
        return []
    out = []
    for c in children:
        with contextlib.suppress(psutil.Error):
            if c.status() != psutil.STATUS_ZOMBIE:
                out.append([c.pid, c.create_time()])
    return out


def end(processes: list[list], grace: float = GRACE) -> list[int]:
    """End the processes ``[pid, start time]`` that still run, and what they started since: SIGTERM, then
    SIGKILL after ``grace`` s. Returns the pids that were running."""
    import psutil

    found: dict[int, psutil.Process] = {}
    for pid, started in processes:
        if not is_running(pid, started):
            continue
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            for q in [p, *p.children(recursive=True)]:
                found.setdefault(q.pid, q)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in found.values():
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)
        _, alive = psutil.wait_procs(list(found.values()), timeout=grace if sig == signal.SIGTERM else 10)
        if not alive:
            break
    return sorted(found)


def reap() -> None:
    """Collect finished multiprocessing children (vLLM's engine processes), so none stays ``<defunct>``."""
    import multiprocessing

    multiprocessing.active_children()


_watchdog: tuple[int, subprocess.Popen] | None = None


def helpers() -> set[int]:
    """Our watchdog and multiprocessing's resource tracker: both leave by themselves once we have exited."""
    from multiprocessing import resource_tracker

    return {_watchdog[1].pid if _watchdog else None, getattr(resource_tracker._resource_tracker, "_pid", None)}


def lifeline() -> None:
    """Start the watchdog for this process (once; again in a forked child, which is another process)."""
    global _watchdog
    if _watchdog is not None and _watchdog[0] == os.getpid() and _watchdog[1].poll() is None:
        return
    me = identity(os.getpid())
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "bench.procs", str(me[0]), repr(me[1])], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    _watchdog = (os.getpid(), proc)
    log.debug("watchdog %d started for pid %d", proc.pid, me[0])


def watch(pid: int, started: float, interval: float = WATCH_INTERVAL) -> list[int]:
    """The watchdog's loop: record ``pid``'s descendants until it has ended, then end those still running."""
    known: dict[int, float] = {}
    while is_running(pid, started):
        known.update(descendants(pid))
        time.sleep(interval)
    return end([[p, s] for p, s in known.items() if p != os.getpid()])


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C to the terminal's group is not for the watchdog
    watch(int(sys.argv[1]), float(sys.argv[2]))
