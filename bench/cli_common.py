"""What every ``bench`` command shares: the Typer app and its sub-apps, the console, ``-v``, and the one-sentence
error handling (``fail_cleanly``). The command modules (``cli``, ``cli_eval``, ``cli_suite``, ...) import this and
nothing imports them back, so the commands have one direction: ``cli`` -> ``cli_*`` -> ``cli_common``."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

app = typer.Typer(help="Benchmark fine-grained alignment methods (FIGA, SFT, DPO, PPO, fine-grained PPO).",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
recipes_app = typer.Typer(help="Registered training recipes.", no_args_is_help=True)
data_app = typer.Typer(help="Datasets: the data kit, the Hub, your own files.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")
app.add_typer(data_app, name="data")
console = Console()
VERBOSE = False  # -v: debug logging, and a traceback behind every error
RESUME_HINT = "interrupted; run the same command again to resume from where it stopped"


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging, tracebacks on errors")] = False):
    global VERBOSE
    VERBOSE = verbose
    # under a launcher every rank runs this: only rank 0 tells what happens, the others only their errors (the
    # launcher's RANK read here, not through bench.distributed, which would import torch into every command's start)
    quiet = int(os.environ.get("RANK", "0")) > 0
    logging.basicConfig(level=logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO,
                        format="%(message)s",
                        handlers=[RichHandler(console=Console(stderr=True), show_path=False)])


def user_error_message(e: BaseException) -> str | None:
    """The one sentence for a user's mistake, or None for anything that is a bug in bench."""
    import errno

    from .data import DataError

    if isinstance(e, DataError) or getattr(e, "user_error", False):  # plugins (the leaderboard) flag theirs
        return str(e)
    if isinstance(e, KeyError):
        return str(e.args[0]) if e.args else "unknown key"
    if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.ENOENT,
                                              errno.ENOTDIR, errno.EISDIR, errno.EADDRINUSE):
        where = f" '{e.filename}'" if e.filename else ""
        return f"{e.strerror or e}{where}"
    return None


def fail_cleanly(fn):
    """Bad input ends with one red line naming file, line and field: never a deep traceback (unless -v).

    A genuine bug keeps its traceback, with one line asking for a report. SIGINT and SIGTERM are handled alike
    (``bench.procs.handle_signals``): what the command started is shut down, its locks released, and it says
    how to resume and exits 130 / 143."""
    import functools

    from .procs import exit_code, handle_signals

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with handle_signals():
                return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.BadParameter, SystemExit):
            raise
        except KeyboardInterrupt as e:
            console.print(f"[bold yellow]{RESUME_HINT}[/]", highlight=False)
            raise typer.Exit(exit_code(e)) from None
        except Exception as e:
            message = user_error_message(e)
            if message is None:
                console.print("[bold red]bug:[/] this is a bug in bench; please report it with the command and "
                              "the traceback below", highlight=False)
                raise
            if VERBOSE:
                console.print_exception()
            console.print(f"[bold red]error:[/] {message}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper
