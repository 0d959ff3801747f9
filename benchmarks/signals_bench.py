"""SIGINT, SIGTERM and SIGKILL sent to ``bench`` in each stage: seconds to exit and processes left behind.

For each stage (train, generate, judge, suite of ``bench run``, and ``bench serve``) and each signal, on the
tiny random llama: start the command, wait until the stage is under way (generate: vLLM's worker process
exists; serve: the server answers), send the signal to the ``bench`` process only (as ``kill PID``,
``timeout`` or a scheduler do), then report the exit status, the seconds until it exited, the seconds until
every process it had started was gone (at most ``--grace``), and how many were still running after that
grace (then killed by this script, so the next case starts clean). ``--code DIR`` picks the source tree, so
the same script measures the code before and after a change:

    nice -n 5 .venv/bin/python benchmarks/signals_bench.py --code /path/to/old/checkout --out /tmp/before.json
    nice -n 5 .venv/bin/python benchmarks/signals_bench.py --code . --out /tmp/after.json

About 15-25 min on 2 shared cores (most of it vLLM start-ups). Needs the data kit (``BENCH_DATA``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

STAGES = ("train", "generate", "judge", "suite", "serve")
SIGNALS = ("SIGINT", "SIGTERM", "SIGKILL")
RUN = """run: sig
root: {root}
model: {model}
data: expertqa
methods: [sft]
budget: {{max_steps: {steps}, batch_size: 2, max_length: 128, limit: 8, val_limit: 2, save_steps: 1000}}
seeds: [0]
eval_set: alpaca_eval
eval_limit: 8
max_new_tokens: 64
judge: mimic-gpt4
controls: {{"null": "I don't know."}}
suite: figa
suite_limit: 2
suite_shots: {{figa_mmlu: 0}}
"""


def bench(code: str) -> list[str]:
    """The ``bench`` console script beside this Python (``--code`` wins through PYTHONPATH)."""
    return [str(Path(sys.executable).parent / "bench")]


def env(code: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(Path(code).resolve()), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


def prepare(work: Path, code: str) -> tuple[Path, Path]:
    """The tiny model, and a run directory whose train, generate and judge stages are done."""
    model = work / "tiny"
    if not (model / "config.json").exists():
        subprocess.run([sys.executable, "-c", "import sys; from bench.models import EMBEDDED, make_tiny_model, resolve; "
                        "make_tiny_model(sys.argv[1], tokenizer_from=resolve(EMBEDDED))", str(model)],
                       env=env(code), check=True)
    done = work / "prepared"
    config = work / "prepared.yaml"
    config.write_text(RUN.format(root=done, model=model, steps=1))
    if not (done / "sig" / "stages" / "judge.json").exists():
        for stage in ("train", "generate", "judge"):
            subprocess.run(bench(code) + ["run", stage, "--config", str(config)], env=env(code), check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return model, done


def tree(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def case(stage: str, sig: str, code: str, work: Path, model: Path, prepared: Path, grace: float) -> dict:
    root = work / f"case-{stage}-{sig}"
    shutil.rmtree(root, ignore_errors=True)
    if stage in ("generate", "judge", "suite"):
        shutil.copytree(prepared, root)
        # finished work is read back, not redone: forget this stage's outputs so that it works again
        shutil.rmtree(root / "sig" / {"generate": "generations", "judge": "judged", "suite": "suite"}[stage],
                      ignore_errors=True)
    config = work / f"case-{stage}.yaml"
    config.write_text(RUN.format(root=root, model=model, steps=400))  # train: long enough to be interrupted
    port = None
    if stage == "serve":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = bench(code) + ["serve", str(prepared / "sig" / "checkpoints" / "sft" / "seed-0"), "--port", str(port)]
    else:
        cmd = bench(code) + ["run", stage, "--force", "--config", str(config)]
    log = work / f"case-{stage}-{sig}.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env=env(code), stdout=f, stderr=subprocess.STDOUT)
    seen: dict[int, psutil.Process] = {}
    t0 = time.time()
    marker = {"train": "[train] sft", "judge": "[judge]", "suite": "[suite]"}.get(stage)
    ready_at = None
    while proc.poll() is None and time.time() - t0 < 900:
        for p in tree(proc.pid):
            seen.setdefault(p.pid, p)
        text = log.read_text(errors="replace")
        if stage == "generate":
            ready = any("Worker" in " ".join(_cmd(p)) for p in seen.values() if running(p))
        elif stage == "serve":
            ready = "serving" in text
        else:
            ready = marker in text
        if ready and ready_at is None:
            ready_at = time.time()
        if ready_at and time.time() - ready_at >= {"train": 8, "suite": 5, "generate": 1}.get(stage, 0.5):
            break
        time.sleep(0.1)
    for p in tree(proc.pid):
        seen.setdefault(p.pid, p)
    if proc.poll() is not None:
        return {"stage": stage, "signal": sig, "note": f"finished before the signal (exit {proc.returncode})"}
    sent = time.time()
    try:
        proc.send_signal(getattr(signal, sig))
        rc = proc.wait(300)
    except subprocess.TimeoutExpired:
        rc = "hung (killed after 300 s)"
    finally:
        proc.kill()  # a no-op unless it hung (or this script was interrupted)
    exited = time.time() - sent
    while time.time() - sent < exited + grace and any(running(p) for p in seen.values()):
        time.sleep(0.1)
    gone = time.time() - sent
    left = [p for p in seen.values() if running(p)]
    names = sorted({(_cmd(p) or ["?"])[0].rsplit("/", 1)[-1] for p in left})
    row = {"stage": stage, "signal": sig, "exit": rc, "exit_s": round(exited, 1), "started": len(seen),
           "all_gone_s": round(gone, 1) if not left else None, "left": len(left), "left_names": names}
    if port:
        row["port_open_after"] = port_open(port)
    for p in left:  # clean up for the next case
        try:
            p.kill()
        except psutil.Error:
            pass
    lock = root / "sig" / ".bench_run.lock"
    row["lock_left"] = lock.exists()
    return row


def _cmd(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", default=".", help="source tree whose bench is measured")
    ap.add_argument("--work", default="/tmp/bench-signals")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--signals", default=",".join(SIGNALS))
    ap.add_argument("--grace", type=float, default=10.0, help="seconds after exit before counting what is left")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model, prepared = prepare(work, args.code)
    commit = subprocess.run(["git", "-C", args.code, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows = []
    for stage in args.stages.split(","):
        for sig in args.signals.split(","):
            row = case(stage, sig, args.code, work, model, prepared, args.grace)
            row["code"] = commit
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    print("\n| stage | signal | exit | s to exit | processes started | left after grace | s until all gone |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "note" in r:
            print(f"| {r['stage']} | {r['signal']} | {r['note']} | | | | |")
            continue
        left = f"{r['left']} ({', '.join(r['left_names'])})" if r["left"] else "0"
        print(f"| {r['stage']} | {r['signal']} | {r['exit']} | {r['exit_s']} | {r['started']} | {left} | {r['all_gone_s']} |")


if __name__ == "__main__":
    main()
