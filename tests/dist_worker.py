"""One rank of tests/test_distributed.py, started by ``accelerate launch``: trains each recipe named in the job
(JSON in argv[1]) through ``bench.api.train`` and writes what this rank saw and did to ``<report>/rank-R.json``:

- ``world_size``: the world size the rank ran in;
- ``errors``: per recipe that raised, its traceback (the other recipes still run);
- ``seen``: per recipe, the token rows each training forward pass received, in order;
- ``writes``: every file this rank opened for writing, renamed, removed or created a directory for under the
  job's output root (Python's audit hooks; safetensors writes from Rust are not seen, the config.json and
  tokenizer files written beside them are), with a timestamp.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def fsdp_on_cpu() -> None:
    """Let accelerate honour an FSDP config on CPU. accelerate 1.15 turns FSDP on only for accelerator
    devices: with gloo processes it silently runs DDP (``MULTI_CPU``). torch's FSDP itself runs on CPU over
    gloo, so the one missing step, switching the state to FSDP with the launcher's plugin, is done here; the
    rest (wrapping, sharded checkpoints, saves) is accelerate's and the Trainer's own GPU code path."""
    import torch
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    original = AcceleratorState.__init__

    def init(self, *args, fsdp_plugin=None, **kwargs):
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type, self.fsdp_plugin = DistributedType.FSDP, fsdp_plugin
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP  # as accelerate does on GPUs
            self.device = torch.device("cpu")  # not accelerate's "cpu:0", which FSDP finds inconsistent with "cpu"

    AcceleratorState.__init__ = init


def main() -> None:
    job = json.loads(sys.argv[1])
    root = str(Path(job["root"]).resolve())
    writes: list[dict] = []

    def audit(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & WRITE_FLAGS)
            paths = [path] if writing else []
        elif event in ("os.rename", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree"):
            paths = [args[0]] + ([args[1]] if event == "os.rename" else [])
        else:
            return
        for p in paths:
            if isinstance(p, (str, os.PathLike)) and os.path.abspath(os.fspath(p)).startswith(root):
                writes.append({"event": event, "path": os.path.relpath(os.path.abspath(os.fspath(p)), root),
                               "time": time.time()})

    sys.addaudithook(audit)

    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        fsdp_on_cpu()
    import bench
    from bench import training

    seen: dict[str, list] = {}
    original = training._RecipeTrainer.compute_loss

    def recording(self, model, inputs, *args, **kwargs):
        if model.training:
            rows = [ids[mask.bool()].tolist() for ids, mask in zip(inputs["input_ids"], inputs["attention_mask"])]
            seen.setdefault(self.recipe.name, []).append(rows)
        return original(self, model, inputs, *args, **kwargs)

    training._RecipeTrainer.compute_loss = recording
    errors = {}
    for recipe in job["recipes"]:
        options = {**job["options"], **job.get("per_recipe", {}).get(recipe, {})}
        try:
            bench.train(recipe, output_dir=str(Path(root) / recipe), **options)
        except Exception:
            errors[recipe] = traceback.format_exc()
    report = Path(job["report"])
    report.mkdir(parents=True, exist_ok=True)
    (report / f"rank-{os.environ.get('RANK', '0')}.json").write_text(json.dumps(
        {"world_size": int(os.environ.get("WORLD_SIZE", "1")), "errors": errors, "seen": seen, "writes": writes}))


if __name__ == "__main__":
    main()
