"""Run a benchmark suite on a checkpoint through lm-eval's Python API, caching each suite entry's result.

A suite is a list of lm-eval entries (tasks or groups). Each entry runs as its own ``simple_evaluate``
call on one shared, lazily built lm-eval model, and its results are stored as lm-eval's own results JSON
under a key made of everything that decides the numbers: the checkpoint's files (names, sizes, mtimes),
the entry's task files and data files, the backend and its arguments, limit, shots, chat-template use and
the lm-eval version. An unchanged entry is read back instead of re-run, so an interrupted suite resumes
where it stopped and adding one task to a finished suite costs only that task.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.atomic import atomic_write_json
from bench.data import DataError

from .backends import Backend, make_backend, prepare_vllm_cpu, quiet_lm_eval

log = logging.getLogger("bench.suite")

TASKS_DIR = Path(__file__).parent / "tasks"
# Named suites. "figa" is the paper's four likelihood benchmarks on the offline data kit; "figa-hub" is
# the same four as lm-eval ships them (full MMLU, Hub datasets), for machines that are online.
SUITES = {
    "figa": ["figa_mmlu", "figa_truthfulqa", "figa_crows_pairs", "figa_winogender"],
    "figa-hub": ["mmlu", "truthfulqa_mc1", "truthfulqa_mc2", "crows_pairs_english", "winogender_all"],
}


@dataclass
class SuiteConfig:
    """Everything a suite run depends on besides the checkpoint; printed and stored with the results."""

    suite: str = "figa"
    backend: str = "hf-prefix"
    url: str | None = None  # for backend "endpoint"
    limit: int | float | None = None  # documents per task, or a fraction of each task if < 1 (lm-eval --limit)
    shots: dict[str, int] = field(default_factory=dict)  # entry -> num_fewshot override, e.g. figa_mmlu=0
    chat_template: bool = False  # see README "Chat template": off for likelihood tasks
    batch_size: int = 16
    max_length: int = 4096  # context + answer tokens; longer prompts are cut from the left (lm-eval)
    out_dir: str | None = None  # default results/suite/<checkpoint name>
    rerun: bool = False  # ignore cached entries


@dataclass
class EntryResult:
    entry: str
    path: str  # lm-eval results JSON
    cached: bool
    seconds: float
    results: dict


def _sha(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def files_fingerprint(root: Path, patterns=("*",)) -> list:
    """(relative name, size, mtime) of the files under ``root``: cheap, and changes whenever content does."""
    if not root.exists():
        return [str(root)]
    files = sorted({p for pat in patterns for p in (root.rglob(pat) if root.is_dir() else [root]) if p.is_file()})
    return [(str(p.relative_to(root) if root.is_dir() else p.name), p.stat().st_size, p.stat().st_mtime_ns)
            for p in files if "__pycache__" not in p.parts]


def checkpoint_fingerprint(checkpoint: str) -> list:
    """A local checkpoint by its files; a Hub id by its name (the Hub pins content by revision)."""
    p = Path(checkpoint)
    return [str(p.resolve()), files_fingerprint(p)] if p.exists() else [checkpoint]


def resolve_suite(spec: str) -> tuple[list[str], list[str]]:
    """``spec`` -> (entries, include paths). Comma-separated: a named suite, a task directory, a task
    YAML file, or any lm-eval task / group / tag name."""
    entries, include = [], [str(TASKS_DIR)]  # our tasks are always known by name (figa_mmlu, ...)
    for part in [s.strip() for s in spec.split(",") if s.strip()]:
        if part in SUITES:
            entries += SUITES[part]
        elif Path(part).is_dir():
            include.append(str(Path(part).resolve()))
            entries += top_level_entries(Path(part))
        elif Path(part).is_file() and part.endswith((".yaml", ".yml")):
            include.append(str(Path(part).resolve().parent))
            entries.append(_yaml_name(Path(part)))
        else:
            entries.append(part)
    if not entries:
        raise ValueError(f"suite '{spec}' names no tasks")
    return list(dict.fromkeys(entries)), list(dict.fromkeys(include))


def _yaml_name(path: Path) -> str:
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(path, resolve_func=False)
    name = cfg.get("group") or cfg.get("task")
    if not isinstance(name, str):
        raise DataError(path, None, "task", "a task YAML needs a 'task' or 'group' name")
    return name


def top_level_entries(directory: Path) -> list[str]:
    """The groups and the tasks that no group in ``directory`` already contains."""
    from lm_eval.tasks._yaml_loader import load_yaml

    cfgs = [load_yaml(p, resolve_func=False) for p in sorted(directory.rglob("*.yaml"))]
    members = {m for c in cfgs if "group" in c for m in c.get("task", []) if isinstance(m, str)}
    names = [c.get("group") or c.get("task") for c in cfgs]
    return [n for n in names if isinstance(n, str) and n not in members]


def entry_fingerprint(entry: str, include: list[str]) -> list:
    """Task files of the include paths and the data kit files (lm-eval's own tasks are pinned by its version)."""
    from bench.data.readers import data_dir

    return [entry, [files_fingerprint(Path(p), ("*.yaml", "*.py")) for p in include],
            files_fingerprint(data_dir() / "eval")]


class SuiteRunner:
    """Runs the entries of one suite on one checkpoint; builds the lm-eval model only if an entry needs it."""

    def __init__(self, checkpoint_spec: str, cfg: SuiteConfig):
        from bench.models import resolve

        self.spec, self.cfg = checkpoint_spec, cfg
        self.checkpoint = resolve(checkpoint_spec)
        self.entries, self.include = resolve_suite(cfg.suite)
        self.backend: Backend = make_backend(cfg.backend, self.checkpoint, cfg.batch_size, cfg.url, cfg.max_length)
        name = Path(self.checkpoint).name if Path(self.checkpoint).exists() else self.checkpoint.replace("/", "__")
        self.out = Path(cfg.out_dir or Path("results") / "suite" / name)
        self._lm = None
        self._task_manager = None

    # ------------------------------------------------------------------ provenance and cache keys
    @functools.cached_property
    def provenance(self) -> dict:
        import lm_eval

        from bench.chat import template_hash
        from bench.models import load_tokenizer

        return {"checkpoint": self.spec, "checkpoint_path": self.checkpoint, "backend": self.backend.name,
                "lm_eval_model": self.backend.lm_eval_model, "model_args": self.backend.model_args,
                "chat_template_applied": self.cfg.chat_template,
                "template_hash": template_hash(load_tokenizer(self.checkpoint)),
                "lm_eval_version": lm_eval.__version__, "suite": self.cfg.suite, "limit": self.cfg.limit,
                "shots": self.cfg.shots}

    def key(self, entry: str) -> str:
        import lm_eval

        return _sha({"checkpoint": checkpoint_fingerprint(self.checkpoint), "entry": entry_fingerprint(entry, self.include),
                     "backend": self.backend.key, "limit": self.cfg.limit, "shots": self.cfg.shots.get(entry),
                     "chat_template": self.cfg.chat_template, "lm_eval": lm_eval.__version__})

    def result_path(self, entry: str) -> Path:
        return self.out / "lm_eval" / f"{entry}.{self.key(entry)[:16]}.json"

    # ------------------------------------------------------------------ lm-eval objects
    @property
    def task_manager(self):
        if self._task_manager is None:
            from lm_eval.tasks import TaskManager

            # Indexing lm-eval's own ~15,000 task files takes seconds: only when the suite names one of them.
            tm = TaskManager(include_path=self.include, include_defaults=False) if self.include else None
            if tm is None or any(e not in tm.all_tasks for e in self.entries):
                tm = TaskManager(include_path=self.include or None)
            self._task_manager = tm
            unknown = [e for e in self.entries if e not in tm.all_tasks]
            if unknown:
                raise KeyError(f"unknown lm-eval task(s) {', '.join(unknown)} (suite '{self.cfg.suite}'; "
                               f"named suites: {', '.join(SUITES)}; or give a task directory or YAML file)")
        return self._task_manager

    @property
    def lm(self):
        """The lm-eval model, built once for all entries that are not cached."""
        if self._lm is None:
            from lm_eval.api.registry import get_model

            if self.backend.lm_eval_model == "vllm":
                prepare_vllm_cpu()
            if self.backend.lm_eval_model == "hf-prefix":
                from . import prefix_lm  # noqa: F401  (registers the model with lm-eval)
            args = dict(self.backend.model_args)
            self._lm = get_model(self.backend.lm_eval_model).create_from_arg_obj(args)
        return self._lm

    def _check_chat_template(self) -> None:
        if self.cfg.chat_template:
            from bench.models import load_tokenizer

            if not load_tokenizer(self.checkpoint).chat_template:
                raise ValueError(f"--chat-template: {self.checkpoint} has no chat template")

    # ------------------------------------------------------------------ running
    def run_entry(self, entry: str) -> EntryResult:
        path = self.result_path(entry)
        if path.exists() and not self.cfg.rerun:
            log.info("%s: cached (%s)", entry, path)
            return EntryResult(entry, str(path), True, 0.0, json.loads(path.read_text()))
        from lm_eval import simple_evaluate
        from lm_eval.utils import handle_non_serializable

        _ = self.task_manager  # validates names before the (slow) model build
        self._check_chat_template()
        start = time.perf_counter()
        with quiet_lm_eval():
            try:
                results = simple_evaluate(
                    model=self.lm, tasks=[entry], task_manager=self.task_manager, limit=self.cfg.limit,
                    num_fewshot=self.cfg.shots.get(entry), apply_chat_template=self.cfg.chat_template,
                    fewshot_as_multiturn=self.cfg.chat_template, log_samples=False)
            except DataError as e:
                raise DataError(e.path, e.line, e.field, f"task {entry}: {e.problem}") from None
            except ConnectionError as e:  # a Hub dataset (lm-eval's own tasks) on a machine that is offline
                raise ValueError(f"task {entry}: {e}. Offline, run the data kit's tasks instead: --suite figa") from None
        seconds = time.perf_counter() - start
        # Make the JSON read like an lm-eval CLI run of this backend, and add our provenance beside it.
        results["config"]["model"] = self.backend.lm_eval_model
        results["config"]["model_args"] = self.backend.model_args
        results["bench"] = {**self.provenance, "entry": entry, "cache_key": self.key(entry), "seconds": seconds}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False))
        tmp.rename(path)  # atomic: an interrupted run never leaves a half-written (and so "cached") result
        log.info("%s: %.1f s -> %s", entry, seconds, path)
        return EntryResult(entry, str(path), False, seconds, json.loads(path.read_text()))

    def run(self) -> list[EntryResult]:
        try:
            return [self.run_entry(e) for e in self.entries]
        finally:
            self.close()

    def close(self) -> None:
        """Stop the model now. A vLLM engine runs in child processes that, left to interpreter exit, can
        keep the parent waiting on them; an explicit shutdown ends them with the run."""
        engine = getattr(getattr(getattr(self._lm, "model", None), "llm_engine", None), "engine_core", None)
        if engine is not None and hasattr(engine, "shutdown"):
            engine.shutdown()
        self._lm = None


def run_suite(checkpoint: str, cfg: SuiteConfig, reward: float | None = None, vicuna: float | None = None,
              wizardlm: float | None = None) -> dict:
    """Run (or read back) every entry, then write and return the normalised summary."""
    from .summary import build_summary

    runner = SuiteRunner(checkpoint, cfg)
    entries = runner.run()
    summary = build_summary(entries, runner.provenance, asdict(cfg), reward=reward, vicuna=vicuna, wizardlm=wizardlm)
    runner.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(runner.out / "summary.json", summary, ensure_ascii=False)  # bench/atomic.py
    summary["summary_path"] = str(runner.out / "summary.json")
    return summary
