"""Up-front checks of everything a user types, so a mistake is one sentence before any model loads.

Each check raises ``DataError`` naming where the value came from (an option such as ``--max-steps``, a
config file, ``--set``), the value, and what would be accepted. The checks are cheap: no torch, no model
weights, no engine; a model is checked by its ``config.json`` only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
from pathlib import Path

from .data.errors import DataError

EMBEDDED = "smollm2-135m-instruct"  # bench.models.EMBEDDED (not imported: bench.models imports torch)
NAME = re.compile(r"[A-Za-z0-9._-]+")


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def at_least(lo):
    return (lambda v: _num(v) and v >= lo), f"a number >= {lo}"


def int_at_least(lo):
    return (lambda v: _int(v) and v >= lo), f"an integer >= {lo}"


def positive():
    return (lambda v: _num(v) and v > 0), "a number > 0"


def between(lo, hi, hi_open=False):
    return (lambda v: _num(v) and lo <= v and (v < hi if hi_open else v <= hi)), \
        f"a number from {lo} to {hi}" + (" (exclusive)" if hi_open else "")


def fraction():
    return (lambda v: _num(v) and 0 < v <= 1), "a number > 0 and at most 1"


# Ranges of the options every recipe shares (TrainConfig) and of the recipes' own options; a field not
# listed here is still checked for a finite value when it is a number.
TRAIN_RULES = {
    "seed": int_at_least(0),
    "limit": int_at_least(0),
    "val_fraction": between(0, 1, hi_open=True),
    "val_limit": int_at_least(0),
    "max_length": int_at_least(8),
    "learning_rate": positive(),
    "warmup_ratio": between(0, 1),
    "weight_decay": at_least(0),
    "epochs": positive(),
    "max_steps": ((lambda v: _int(v) and (v == -1 or v >= 1)), "an integer >= 1 (or -1 to train for 'epochs')"),
    "batch_size": int_at_least(1),
    "grad_accum": int_at_least(1),
    "max_grad_norm": positive(),
    "logging_steps": int_at_least(1),
    "save_steps": int_at_least(1),
    "eval_steps": int_at_least(0),
    "lora_r": int_at_least(0),
    "lora_alpha": positive(),
    "lora_dropout": between(0, 1, hi_open=True),
    "beta": positive(),
    "ref_batch_size": int_at_least(1),
    "rollout_batch": int_at_least(1),
    "max_new_tokens": int_at_least(1),
    "max_prompt_length": int_at_least(1),
    "temperature": positive(),
    "ppo_epochs": int_at_least(1),
    "kl_coef": at_least(0),
    "kl_target": at_least(0),
    "kl_horizon": int_at_least(1),
    "gamma": at_least(0),
    "lam": between(0, 1),
    "clip_range": positive(),
    "clip_range_value": positive(),
    "vf_coef": at_least(0),
    "forward_batch_size": int_at_least(1),
    "eval_pairs": int_at_least(0),
    "calibration_pairs": int_at_least(0),
    "rollout_gpu_memory_utilization": between(0, 1),
}
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
              "warmup_stable_decay")


def bad(source: str, field: str | None, value, accepted: str) -> DataError:
    """The one-sentence error: where, which value, what would be accepted."""
    return DataError(source, None, field, f"got {value!r}; expected {accepted}")


def check_option(option: str, value, rule) -> None:
    """A command-line option against a rule such as ``int_at_least(1)``; ``None`` (not given) passes."""
    ok, accepted = rule
    if value is not None and not ok(value):
        raise bad(option, None, value, accepted)


def check_name(value: str, what: str = "run", source: str = "run config") -> str:
    """A run or method name is a name, never a path: letters, digits, '.', '_', '-'."""
    if not isinstance(value, str) or not NAME.fullmatch(value) or value in (".", ".."):
        raise bad(source, what, value, "a name made of letters, digits, '.', '_' and '-' (not a path)")
    return value


def source_of(layers: list[tuple[str, dict]] | None, key: str, default: str = "defaults") -> str:
    """The layer (``bench.config.build_config``'s ``(source, mapping)``) that set ``key`` last."""
    for source, mapping in reversed(layers or []):
        if key in {k.replace("-", "_") for k in (mapping or {})}:
            return source
    return default


def check_config(cfg, layers: list[tuple[str, dict]] | None = None, context: int | None = None) -> None:
    """Type-checked config values (``bench.config.build_config``) against their ranges.

    ``layers`` are the ``(source, mapping)`` pairs the config was built from, so the message blames the
    one that set the value. ``context`` (the model's context length, when known) bounds ``max_length``."""
    def fail(name, value, accepted):
        raise bad(source_of(layers, name), name, value, accepted)

    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        rule = TRAIN_RULES.get(f.name)
        if rule and value is not None and not rule[0](value):
            fail(f.name, value, rule[1])
        if rule is None and isinstance(value, float) and not math.isfinite(value):
            fail(f.name, value, "a finite number")
    if getattr(cfg, "lr_scheduler", SCHEDULERS[0]) not in SCHEDULERS:
        fail("lr_scheduler", cfg.lr_scheduler, "one of " + ", ".join(SCHEDULERS))
    if context and getattr(cfg, "max_length", 0) > context:
        fail("max_length", cfg.max_length, f"at most the model's context of {context} tokens")
    if getattr(cfg, "tau_min", None) is not None and cfg.tau_min > getattr(cfg, "tau", math.inf):
        fail("tau_min", cfg.tau_min, f"at most tau ({cfg.tau})")


def check_train_config(cfg, layers: list[tuple[str, dict]]) -> None:
    """Everything ``bench train`` (and ``bench.train``) needs before a model loads: option ranges,
    ``max_length`` against the model's context, the model, the data spec, a writable output directory,
    and the reward model a PPO recipe reads."""
    def where(key: str) -> str:
        source = source_of(layers, key)
        return f"--{key.replace('_', '-')}" if source == "command line" else f"{source}: {key}"

    context = check_model(cfg.model, where("model"))
    check_config(cfg, layers, context)
    check_data_spec(cfg.data, where("data"))
    reward_model = getattr(cfg, "reward_model", None)
    if isinstance(reward_model, str) and not reward_model.startswith("token-id:"):
        check_checkpoint(reward_model, where("reward_model"))
    check_output_dir(cfg.output_dir or "results/checkpoints", where("output_dir"))


def model_config(spec: str, source: str = "--model") -> dict | None:
    """The ``config.json`` of a model spec, read without loading the model; None for a Hub id that is
    not cached here (then it is left to transformers, which reports an offline or unknown id itself).

    A path that does not exist, or a directory that is not a checkpoint, is a user error."""
    if spec == EMBEDDED:
        root = Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench"))  # bench.models.cache_dir
        found = sorted((root / "models").glob(f"{EMBEDDED}-*/config.json"))
        return json.loads(found[-1].read_text()) if found else None
    path = Path(spec).expanduser()
    looks_like_path = path.is_absolute() or spec.startswith((".", "~")) or spec.count("/") > 1
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise DataError(source, None, None, f"'{spec}' is not a model checkpoint (expected a directory with "
                                                "config.json, a Hugging Face id, or smollm2-135m-instruct)")
        try:
            config = json.loads((path / "config.json").read_text())
        except (OSError, ValueError) as e:
            raise DataError(path / "config.json", None, None, f"unreadable model config: {e}") from None
        if not isinstance(config, dict) or not config.get("model_type"):
            raise DataError(path / "config.json", None, "model_type", f"'{spec}' is not a model checkpoint: its "
                            "config.json names no model_type (expected a directory saved by save_pretrained)")
        return config
    if looks_like_path or not re.fullmatch(r"[\w.-]+/[\w.-]+", spec):
        raise DataError(source, None, None, f"model '{spec}' not found: expected a checkpoint directory, a Hugging "
                                            "Face id (owner/name), or smollm2-135m-instruct")
    return _cached_hub_config(spec, source)


def _cached_hub_config(repo: str, source: str) -> dict | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    hit = try_to_load_from_cache(repo, "config.json")
    if isinstance(hit, str):
        return json.loads(Path(hit).read_text())
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        raise DataError(source, None, None, f"model '{repo}' is not in the Hugging Face cache and HF_HUB_OFFLINE is "
                                            "set: give a local checkpoint directory or download it first")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    try:  # only the small config file: an unknown or unreachable id fails here, not after minutes of setup
        return json.loads(Path(hf_hub_download(repo, "config.json")).read_text())
    except (RepositoryNotFoundError, EntryNotFoundError):
        raise DataError(source, None, None, f"model '{repo}' not found on the Hugging Face Hub (or it is private)") from None
    except Exception as e:  # no network, DNS, timeouts: huggingface_hub raises several types
        raise DataError(source, None, None, f"model '{repo}' is not cached here and the Hugging Face Hub cannot be "
                                            f"reached ({type(e).__name__}): give a local checkpoint directory") from None


def context_of(config: dict | None) -> int | None:
    return (config or {}).get("max_position_embeddings")


def check_model(spec: str, source: str = "--model") -> int | None:
    """Check a model spec; return its context length when known."""
    if not isinstance(spec, str) or not spec.strip():
        raise bad(source, None, spec, "a checkpoint directory, a Hugging Face id or smollm2-135m-instruct")
    return context_of(model_config(spec, source))


def check_checkpoint(path: str, source: str) -> None:
    """A trained checkpoint that a later stage reads: must exist and hold config.json."""
    p = Path(path)
    if not (p / "config.json").is_file():
        raise DataError(source, None, None, f"checkpoint '{path}' not found (expected a directory with config.json"
                        + ("; train it first" if not p.exists() else "") + ")")


def check_data_spec(spec: str, source: str = "--data") -> None:
    """A data spec names a known set or an existing file (its rows are checked when read)."""
    from .data.sets import DATASETS

    if not isinstance(spec, str) or not spec.strip():
        raise bad(source, None, spec, "a dataset name (bench data list) or a file path")
    from .data.specs import file_spec, is_file_spec

    name, sep, rest = spec.partition(":")
    if Path(spec.split("?")[0]).exists() or (is_file_spec(spec) and name not in DATASETS):
        file_spec(spec)  # path, query keys, mapped fields: each its own sentence (rows are checked when read)
        return
    if name in DATASETS and not sep:
        return
    if name in DATASETS and sep:
        if not Path(rest).exists():
            raise DataError(rest, None, None, f"file not found (in data spec '{spec}')")
        return
    raise DataError(source, None, None, f"unknown data spec '{spec}': use a dataset name ({', '.join(DATASETS)}), "
                                        "NAME:PATH, or an existing file path")


def check_output_dir(path: str | Path, source: str) -> Path:
    """A directory we will write to: it (or its nearest existing parent) must be a writable directory."""
    p = Path(path).expanduser()
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise DataError(source, None, None, f"'{path}' cannot be a directory: '{probe}' is a file")
    try:  # os.access says yes to root on a read-only filesystem: try it
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise DataError(source, None, None, f"'{path}' is not writable ({e.strerror} in '{probe}'); "
                                            "choose another directory") from None
    return p


def _judges() -> dict:
    """``bench.judges.judges()`` without importing the judges package (it imports pandas)."""
    from .registry import Registry

    here = Path(__file__).resolve().parent / "judges"
    specs = [Registry("judge").read_spec(p) for p in sorted(here.glob("*.yaml")) if not p.name.endswith(".card.yaml")]
    return {spec.name: spec for spec in specs}


GENERATION_BACKENDS = ("auto", "vllm", "hf")
SUITE_BACKENDS = ("hf-prefix", "hf", "vllm", "endpoint")


def check_run_config(run, sources: dict[str, str] | None = None) -> None:
    """Every field of a run config (``bench.stages.config.RunConfig``), before the first stage starts.

    ``sources`` maps a field to where its value came from (the run YAML or ``--set``). Cheap: recipe and
    judge names are checked against their YAML specs, the model by its config.json; the recipes' own
    option ranges are checked by the train stage before it trains anything (that needs their code)."""
    from .data.sets import DATASETS
    from .registry import recipes

    def where(key):
        return (sources or {}).get(key, "run config")

    def need(key, ok: bool, accepted: str):
        if not ok:
            raise bad(where(key), key, getattr(run, key), accepted)

    check_name(run.run, "run", where("run"))
    check_output_dir(run.root, f"{where('root')}: root")
    context = check_model(run.model, f"{where('model')}: model")
    check_data_spec(run.data, f"{where('data')}: data")
    known = recipes()
    need("methods", isinstance(run.methods, list) and len(run.methods) > 0, "a non-empty list of methods")
    for m in run.methods:
        if m not in known:
            raise bad(where("methods"), "methods", m, "a recipe name: " + ", ".join(sorted(known)))
    need("methods", len(set(run.methods)) == len(run.methods), "each method once")
    need("seeds", isinstance(run.seeds, list) and run.seeds and all(_int(s) and s >= 0 for s in run.seeds)
         and len(set(run.seeds)) == len(run.seeds), "a non-empty list of distinct integers >= 0")
    for key in ("budget", "method_options", "judge_options", "judge_serve", "suite_shots", "controls"):
        need(key, isinstance(getattr(run, key), dict), "a mapping")
    for m, opts in run.method_options.items():
        if m not in known:
            raise bad(where("method_options"), "method_options", m, "a recipe name: " + ", ".join(sorted(known)))
        if not isinstance(opts, dict):
            raise bad(where("method_options"), f"method_options.{m}", opts, "a mapping of options")
    evals = [n for n, d in DATASETS.items() if d.kind in ("eval", "sft")]
    need("eval_set", isinstance(run.eval_set, str) and (run.eval_set in evals or Path(run.eval_set.split("?")[0]).is_file()),
         "an eval set (" + ", ".join(evals) + ") or a prompts file")
    need("eval_limit", run.eval_limit is None or _int(run.eval_limit) and run.eval_limit >= 1,
         "an integer >= 1 (or null for every prompt)")
    need("max_new_tokens", _int(run.max_new_tokens) and 1 <= run.max_new_tokens <= (context or 10**9),
         f"an integer from 1 to {context or 'the model context'}")
    need("generation_backend", run.generation_backend in GENERATION_BACKENDS, "one of " + ", ".join(GENERATION_BACKENDS))
    judge_specs = _judges()
    need("judge", run.judge in judge_specs, "a judge: " + ", ".join(sorted(judge_specs)))
    unknown = set(run.judge_options) - set(judge_specs[run.judge].defaults)
    if unknown:
        raise bad(where("judge_options"), "judge_options", sorted(unknown)[0],
                  f"an option of judge {run.judge}: " + ", ".join(sorted(judge_specs[run.judge].defaults)))
    check_judge_serve(run.judge, run.judge_serve, where("judge_serve"))
    for kind, value in run.controls.items():
        if kind not in ("null", "positive"):
            raise bad(where("controls"), "controls", kind, "'null' and/or 'positive'")
        if kind == "null" and value is not None and not isinstance(value, str):
            raise bad(where("controls"), "controls.null", value, "a constant answer text (or null)")
        if kind == "positive" and value is not None and value not in evals:
            raise bad(where("controls"), "controls.positive", value, "an eval set with reference answers: " + ", ".join(evals))
    need("suite", isinstance(run.suite, str) and bool(run.suite.strip(", ")), "a suite name, task names or a task path")
    need("suite_limit", run.suite_limit is None or _num(run.suite_limit) and (0 < run.suite_limit < 1 or
         float(run.suite_limit).is_integer() and run.suite_limit >= 1),
         "a fraction between 0 and 1, a whole number of documents >= 1, or null for all")
    for task, n in run.suite_shots.items():
        if not _int(n) or n < 0:
            raise bad(where("suite_shots"), f"suite_shots.{task}", n, "an integer >= 0")
    need("suite_backend", run.suite_backend in SUITE_BACKENDS[:3], "one of " + ", ".join(SUITE_BACKENDS[:3]))
    need("suite_all_seeds", isinstance(run.suite_all_seeds, bool), "true or false")
    need("allow_unvalidated_judge", isinstance(run.allow_unvalidated_judge, bool), "true or false")
    need("allow_template_change", isinstance(run.allow_template_change, bool), "true or false")
    need("ray_memory_gb", isinstance(run.ray_memory_gb, dict), "a mapping of job kind to GiB")
    for kind, gib in run.ray_memory_gb.items():
        if kind not in ("train", "generate", "suite") or not _num(gib) or gib <= 0:
            raise bad(where("ray_memory_gb"), f"ray_memory_gb.{kind}", gib,
                      "GiB > 0 per job kind: train, generate or suite")
    for key, (ok, accepted) in PARALLEL_RULES.items():
        need(key, getattr(run, key) is None and key == "gpu_memory_utilization" or ok(getattr(run, key)), accepted)


def check_judge_serve(judge: str, spec: dict, source: str) -> None:
    """``judge_serve``: a model for an LLM judge, with vLLM's sizes and the server's limits."""
    if not spec:
        return
    if not isinstance(spec, dict):
        raise bad(source, "judge_serve", spec, "a mapping with a model to serve")
    if judge != "llm":
        raise bad(source, "judge_serve", spec, f"nothing for judge {judge!r}: only `judge: llm` is served")
    rules = {**PARALLEL_RULES, "max_model_len": int_at_least(16), "startup_timeout": positive()}
    for key, value in spec.items():
        if key != "model" and key not in rules:
            raise bad(source, f"judge_serve.{key}", value, "one of: model, " + ", ".join(rules))
        if key != "model" and not rules[key][0](value):
            raise bad(source, f"judge_serve.{key}", value, rules[key][1])
    if not isinstance(spec.get("model"), str):
        raise bad(source, "judge_serve.model", spec.get("model"), "the judge model to serve (Hub id or local dir)")
    check_model(spec["model"], f"{source}: judge_serve.model")


# vLLM's sizes (run config fields, bench serve options, a served judge's options)
PARALLEL_RULES = {"tensor_parallel_size": int_at_least(1), "data_parallel_size": int_at_least(1),
                  "gpu_memory_utilization": fraction()}


def check_recipe_configs(configs: list[tuple[str, object, list]], model: str) -> None:
    """The train stage's check of every (method, config, layers) before the first method trains."""
    context = check_model(model, "run config: model")
    for method, cfg, layers in configs:
        check_config(cfg, layers, context)


def check_generate_options(model: str, eval_set: str, output_dir, backend: str, **numbers) -> None:
    """``bench generate`` / ``bench eval`` before any model loads: the model, the eval set, the backend, a
    writable output directory and the sampling numbers (``limit`` etc. as their ``--option`` names)."""
    rules = {"limit": int_at_least(1), "max_new_tokens": int_at_least(1), "temperature": at_least(0),
             "top_p": fraction(), "max_num_seqs": int_at_least(1), "batch_size": int_at_least(1), "seed": int_at_least(0)}
    for key, value in numbers.items():
        check_option(f"--{key.replace('_', '-')}", value, rules[key])
    if backend not in GENERATION_BACKENDS:
        raise bad("--backend", None, backend, "one of " + ", ".join(GENERATION_BACKENDS))
    check_model(model, "model")
    from .data.sets import DATASETS

    if eval_set.split(":")[0] not in DATASETS and not Path(eval_set.split("?")[0]).is_file():
        raise bad("--eval-set", None, eval_set, "an eval set (bench data list) or a prompts file")
    if output_dir is not None:
        check_output_dir(output_dir, "--output-dir")
