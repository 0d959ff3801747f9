"""An end-to-end build against ``bench serve``: with no endpoint configured the build serves its reviser itself
(the tiny model, taught to answer "Yes, that is right." so its revisions end), the policy is the tiny random
model, and FIGA trains on the written file. Starts a vLLM server (~50 s on CPU): marked vllm."""

from __future__ import annotations

import json

import pytest

vllm = pytest.mark.vllm


@pytest.fixture(scope="module")
def short_reviser(tmp_path_factory, tiny_model_dir) -> str:
    """The tiny model after a few SFT steps on one short answer: it stops on its own, unlike the random one."""
    from bench import registry
    from bench.config import build_config

    root = tmp_path_factory.mktemp("reviser")
    data = root / "short.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Request {i}: improve this.", "reference": "Yes, that is right."})
                            + "\n" for i in range(16)))
    spec, cls = registry.get("sft")
    cfg = build_config(cls.Config, [(str(spec.yaml_path), spec.defaults), ("test", dict(
        model=tiny_model_dir, data=f"{data}?prompt=prompt&reference=reference", target="reference", max_length=96,
        batch_size=4, max_steps=25, learning_rate=3e-3, lr_scheduler="constant", warmup_ratio=0.0,
        val_fraction=0.0, output_dir=str(root / "sft")))])
    return str(cls().run(cfg))


@vllm
def test_build_against_bench_serve_writes_a_file_figa_trains_on(tmp_path, tiny_model_dir, short_reviser, monkeypatch):
    from bench import registry
    from bench.config import build_config
    from bench.spa import SpaConfig, build

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Name a fruit, number {i}.", "reference": f"Fruit {i}: an apple."})
                               + "\n" for i in range(5)))
    cfg = SpaConfig(prompts=str(prompts), model=tiny_model_dir, backend="hf", max_new_tokens=12, subpar_quantile=1.0,
                    reviser_model=short_reviser, revise_max_tokens=24, min_edit_ratio=0.0, max_edit_ratio=1.0,
                    min_gain=None, out=str(tmp_path / "built"))
    doc = build(cfg)
    assert doc["steps"]["revised"]["count"] == 5
    assert doc["reviser"]["model"] == "sft" and (tmp_path / "built" / "reviser-serve.log").exists()
    rows = [json.loads(line) for line in open(doc["files"]["data"])]
    assert rows and all(0 < len(r["revised_output"]) < 200 for r in rows), doc["drops"]

    import bench.serve

    def no_server(*a, **k):
        raise AssertionError("a server was started although every revision is cached")

    monkeypatch.setattr(bench.serve, "serve", no_server)
    again = build(cfg)  # every revision is cached: no server is started the second time
    assert again["steps"]["kept"] == doc["steps"]["kept"]

    spec, cls = registry.get("figa")
    out = cls().run(build_config(cls.Config, [(str(spec.yaml_path), spec.defaults), ("test", dict(
        model=tiny_model_dir, data=doc["files"]["data_spec"], max_length=128, batch_size=2, max_steps=1,
        val_fraction=0.0, output_dir=str(tmp_path / "figa")))]))
    assert json.loads((out / "bench_run.json").read_text())["n_train"] == len(rows)
