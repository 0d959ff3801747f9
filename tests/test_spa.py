"""bench/spa: the filter's rules on constructed pairs, the reviser against a scripted OpenAI-compatible endpoint
(resume asks only for what is missing; a down endpoint is one sentence), and a whole build whose file FIGA
trains on (rollout with HF generate on the tiny model, the scripted reviser; the vLLM + bench serve version is
in tests/test_spa_serve.py)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from pathlib import Path

import pytest

from bench.spa.filter import Window, drop_reason, edit_ratio, strip_preamble
from bench.spa.revise import EndpointError, Reviser

WINDOW = Window(min_edit_ratio=0.1, max_edit_ratio=0.6, min_gain=0.05)
ORIGINAL = "Paris is the capital of Germany. It is on the Seine."


def verdict(text, ratio=0.3, gain=0.2, finish="stop", reference="Paris is the capital of France.", original=ORIGINAL):
    return drop_reason(original, {"text": text, "finish_reason": finish}, reference, ratio, gain, WINDOW)


def test_each_filter_rule_drops_what_it_names_and_keeps_a_good_revision():
    good = "Paris is the capital of France. It is on the Seine."
    assert verdict(good) is None
    assert verdict("   ") == "empty"
    assert verdict("Here is the revised answer:\n") == "empty"  # only a preamble
    assert verdict(good, finish="length") == "truncated"
    assert verdict("I'm sorry, but I can't help with revising this.") == "refused"
    # a refusal the reference itself makes is a real revision (HH-RLHF harmless pairs)
    assert verdict("I'm sorry, I can't help with that.", reference="Sorry, I won't help with that.") is None
    assert verdict("Paris is the capital of Germany.  It is on the Seine. ") == "identical"
    assert verdict(good, ratio=0.05) == "edit_ratio_low"
    assert verdict(good, ratio=0.9) == "edit_ratio_high"
    assert verdict(good, gain=0.01) == "score_gain"
    assert verdict(good, gain=-0.3) == "score_gain"
    assert verdict(good, gain=None) == "unscored"
    assert drop_reason(ORIGINAL, {"rejected": "HTTP 400"}, None, None, None, WINDOW) == "rejected"
    # min_gain 0 still needs a real rise; None turns the score check off
    assert drop_reason(ORIGINAL, {"text": good}, None, 0.3, 0.0, Window(0.1, 0.6, 0.0)) == "score_gain"
    assert drop_reason(ORIGINAL, {"text": good}, None, 0.3, None, Window(0.1, 0.6, None)) is None


def test_edit_ratio_is_token_level_and_preamble_is_removed():
    assert edit_ratio([1, 2, 3, 4], [1, 2, 3, 4]) == 0.0
    assert edit_ratio([1, 2, 3, 4], [1, 9, 3, 4]) == 0.25
    assert edit_ratio([1, 2], [5, 6, 7, 8]) == 1.0
    assert strip_preamble("Here's the revised answer:\nParis is in France.") == "Paris is in France."
    assert strip_preamble("Here is a list:\n1. a") == "Here is a list:\n1. a"  # not a reviser's preamble


class ScriptedEndpoint:
    """An OpenAI-compatible chat endpoint on 127.0.0.1 that counts requests; ``mode`` decides the answers:
    "ok" (a fixed edit of the answer in the prompt), "down" (HTTP 503), "garbage" (a non-JSON body),
    "empty" (JSON without choices)."""

    def __init__(self):
        self.mode, self.posts, self.fail_after = "ok", 0, None
        self.stop_after, self.stop = None, threading.Event()  # sets ``stop`` (the build's signal hook) after N answers
        self.delay = 0.0  # seconds per answer
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _send(self, code, body: bytes, kind="application/json"):
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send(200, json.dumps({"object": "list", "data": [{"id": "scripted", "object": "model"}]}).encode())

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.posts += 1
                mode = endpoint.mode
                if endpoint.fail_after is not None and endpoint.posts > endpoint.fail_after:
                    mode = "down"
                if mode == "down":
                    return self._send(503, b'{"error": {"message": "overloaded"}}')
                if mode == "garbage":
                    return self._send(200, b"<html>not an API</html>", "text/html")
                if mode == "empty":
                    return self._send(200, json.dumps({"id": "x", "object": "chat.completion", "created": 0,
                                                       "model": "scripted", "choices": []}).encode())
                time.sleep(endpoint.delay)
                if endpoint.stop_after is not None and endpoint.posts >= endpoint.stop_after:
                    endpoint.stop.set()
                text = request["messages"][0]["content"]
                answer = text.split("\n\nWrite only", 1)[0].rsplit(":\n", 1)[-1]  # the last field: the answer
                revised = answer.replace("Germany", "France").replace("bad", "good") + " Thanks."
                self._send(200, json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "scripted",
                                            "choices": [{"index": 0, "finish_reason": "stop",
                                                         "message": {"role": "assistant", "content": revised}}]}).encode())

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def endpoint():
    e = ScriptedEndpoint()
    yield e
    e.close()


def items(n):
    return [{"id": f"q{i}", "prompt": [{"role": "user", "content": f"Question {i}?"}],
             "response": f"Answer {i} is bad.", "reference": f"Answer {i} is good."} for i in range(n)]


def reviser(tmp_path, url, **kw):
    return Reviser(None, "revise-v1.txt", tmp_path / "cache", concurrency=1, retries=1, backoff=0.01, **kw).connect(url)


def test_resume_after_an_interruption_asks_only_for_the_missing_items(endpoint, tmp_path):
    endpoint.fail_after = 3  # the endpoint dies after three answers: the build stops there
    first = reviser(tmp_path, endpoint.url)
    with pytest.raises(EndpointError):
        first.revise(items(8))
    assert endpoint.posts == 3 + 2  # three answers, then the failing item's two attempts
    endpoint.fail_after, endpoint.posts = None, 0
    again = reviser(tmp_path, endpoint.url)  # a new process: only the cache on disk carries over
    got = again.revise(items(8))
    assert endpoint.posts == 5 and again.requests == 5
    assert [g["text"] for g in got] == [f"Answer {i} is good. Thanks." for i in range(8)]
    endpoint.posts = 0
    reviser(tmp_path, endpoint.url).revise(items(8))
    assert endpoint.posts == 0  # all cached: nothing asked


def test_the_stop_hook_sends_nothing_new_and_a_rerun_asks_only_the_rest(endpoint, tmp_path):
    endpoint.stop_after = 2  # as a SIGTERM handler would, the stop event is set while the second answer is made
    got = reviser(tmp_path, endpoint.url).revise(items(8), stop=endpoint.stop)
    assert endpoint.posts == 2 and sum(g is not None for g in got) == 2
    endpoint.stop_after, endpoint.posts = None, 0
    assert None not in reviser(tmp_path, endpoint.url).revise(items(8))
    assert endpoint.posts == 6


def test_a_new_template_version_is_asked_again(endpoint, tmp_path):
    reviser(tmp_path, endpoint.url).revise(items(2))
    custom = tmp_path / "revise-v2.txt"
    custom.write_text("Fix this minimally.\n{instruction}\n\nAssistant's answer:\n{response}\n\nWrite only the answer.")
    endpoint.posts = 0
    r = Reviser(None, str(custom), tmp_path / "cache", concurrency=1).connect(endpoint.url)
    r.revise(items(2))
    assert endpoint.posts == 2 and r.identity()["template"].startswith("revise-v2.txt@")


@pytest.mark.parametrize("mode, words", [("down", "unreachable or failing"), ("garbage", "answered garbage"),
                                         ("empty", "answered garbage")])
def test_endpoint_down_or_garbage_is_one_sentence_naming_endpoint_and_item(endpoint, tmp_path, mode, words):
    endpoint.mode = mode
    with pytest.raises(EndpointError) as err:
        reviser(tmp_path, endpoint.url).revise(items(3))
    message = str(err.value)
    assert endpoint.url in message and words in message and "item q0" in message and "2 attempts" in message
    assert "\n" not in message


def test_connection_refused_names_the_endpoint(tmp_path):
    from bench.serve import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with pytest.raises(EndpointError, match=f"reviser endpoint {url} unreachable"):
        Reviser("m", "revise-v1.txt", tmp_path / "cache", retries=0).connect(url).revise(items(1))


def prompt_file(tmp_path, n=6):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Name a colour number {i}.", "reference": f"Colour {i} is blue."}) + "\n"
                            for i in range(n)))
    return str(path)


def spa_config(tmp_path, model, url, **kw):
    from bench.spa import SpaConfig

    base = dict(prompts=prompt_file(tmp_path), model=model, backend="hf", max_new_tokens=12, temperature=0.0,
                subpar_quantile=1.0, base_url=url, concurrency=2, retries=1, min_edit_ratio=0.0, max_edit_ratio=1.0,
                min_gain=None, out=str(tmp_path / "built"))
    return SpaConfig(**{**base, **kw})


def test_a_whole_build_writes_spa_rows_that_figa_trains_on(endpoint, tmp_path, tiny_model_dir):
    from bench import registry
    from bench.config import build_config
    from bench.data import load
    from bench.spa import build

    doc = build(spa_config(tmp_path, tiny_model_dir, endpoint.url))
    assert doc["steps"]["prompts"]["count"] == 6 and doc["steps"]["answered"]["count"] == 6
    assert doc["steps"]["revised"]["count"] == 6 == endpoint.posts
    kept = doc["steps"]["kept"]["count"]
    assert kept + sum(doc["drops"].values()) == 6 and sum(doc["edit_ratio"]["counts"]) >= kept
    rows = [json.loads(line) for line in open(doc["files"]["data"])]
    assert len(rows) == kept > 0
    row = rows[0]
    assert {"instruction", "input", "output", "original_output", "revised_output", "scores", "edit_ratio"} <= row.keys()
    assert row["revised_output"].endswith("Thanks.") and row["output"].startswith("Colour")
    assert row["provenance"]["sampling"]["seed"] == 0 and row["provenance"]["reviser"]["model"] == "scripted"
    triples = load(doc["files"]["data_spec"])
    assert triples[0].initial == row["original_output"] and triples[0].revised == row["revised_output"]

    endpoint.posts = 0
    again = build(spa_config(tmp_path, tiny_model_dir, endpoint.url))  # a finished build re-runs from its caches
    assert endpoint.posts == 0 and again["steps"]["kept"] == doc["steps"]["kept"]

    spec, cls = registry.get("figa")
    cfg = build_config(cls.Config, [(str(spec.yaml_path), spec.defaults), ("test", dict(
        model=tiny_model_dir, data=doc["files"]["data_spec"], max_length=128, batch_size=2, max_steps=1,
        val_fraction=0.0, output_dir=str(tmp_path / "figa")))])
    out = cls().run(cfg)
    assert json.loads((out / "bench_run.json").read_text())["config"]["data"] == doc["files"]["data_spec"]


def test_edit_mode_writes_revision_pairs_the_token_reward_model_reads(endpoint, tmp_path, tiny_model_dir):
    from bench.data import load
    from bench.spa import build

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"Is {i} even?", "chosen": f"{i} is even, good.",
                                         "rejected": f"{i} is bad, in Germany."}) + "\n" for i in range(4)))
    cfg = spa_config(tmp_path, tiny_model_dir, endpoint.url, mode="edit", prompts=str(pairs),
                     scorer="judge:mimic-gpt4", out=str(tmp_path / "edits"))
    doc = build(cfg)
    assert doc["steps"]["pairs"]["count"] == 4 and doc["steps"]["kept"]["count"] == 4
    triples = load(doc["files"]["data_spec"], kind="revision")
    assert [t.initial for t in triples] == [f"{i} is bad, in Germany." for i in range(4)]
    assert [t.revised for t in triples] == [f"{i} is good, in France. Thanks." for i in range(4)]


def test_a_run_builds_its_data_first_and_every_method_trains_on_it(endpoint, tmp_path, tiny_model_dir):
    from bench.stages import load_run_config, run_all
    from bench.stages import report as report_stage

    path = tmp_path / "run.yaml"
    build = dict(prompts=prompt_file(tmp_path), backend="hf", max_new_tokens=12, temperature=0.0, subpar_quantile=1.0,
                 base_url=endpoint.url, min_edit_ratio=0.0, max_edit_ratio=1.0, min_gain=None)
    path.write_text(json.dumps(dict(run="built", root=str(tmp_path / "runs"), model=tiny_model_dir, methods=["sft", "figa"],
                                    budget={"max_steps": 1, "batch_size": 2, "max_length": 128, "val_fraction": 0.0},
                                    build_data=build, judge="mimic-gpt4")))
    run = load_run_config(path)
    run_all(run, ["build_data", "train"])
    spec = f"spa:{run.dir / 'data' / 'spa.jsonl'}"
    assert run.train_data == spec
    for method in ("sft", "figa"):
        info = json.loads((Path(run.checkpoint(method, 0)) / "bench_run.json").read_text())
        assert info["config"]["data"] == spec  # the same built pairs (so the same prompts) for every method
    doc = report_stage.document(run)
    assert doc["data"] == spec and doc["methods"]["figa"]["data"] == spec
    assert doc["data_built"]["steps"]["kept"]["count"] == 6 and doc["data_built"]["reviser"]["model"] == "scripted"
    endpoint.posts = 0
    run_all(run, ["build_data", "train"])  # up to date: nothing is built or asked again
    assert endpoint.posts == 0


def test_a_build_option_the_stage_sets_or_does_not_know_is_named(tmp_path):
    from bench.data import DataError
    from bench.stages import load_run_config

    path = tmp_path / "run.yaml"
    path.write_text("run: x\nbuild_data: {prompts: alpaca_libre, reviser: m}\n")
    with pytest.raises(DataError, match="reviser"):
        load_run_config(path)
    path.write_text("run: x\nbuild_data: {model: other}\n")
    with pytest.raises(DataError, match="build_data.model"):
        load_run_config(path)


def build_command(tmp_path, model, url, out) -> list[str]:
    import os
    import sys

    cmd = [os.path.join(os.path.dirname(sys.executable), "bench"), "data", "build-spa", prompt_file(tmp_path, 8),
           "--model", model, "--base-url", url, "--out", str(out)]
    for option in ("backend=hf", "max_new_tokens=8", "temperature=0", "subpar_quantile=1", "concurrency=1",
                   "min_edit_ratio=0", "max_edit_ratio=1", "min_gain=null"):
        cmd += ["--set", option]
    return cmd


def start_and_signal_after(cmd, endpoint, posts: int, signum):
    import subprocess

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while endpoint.posts < posts:
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signum)
    return proc


def test_sigterm_in_the_revise_step_exits_143_and_sends_no_queued_request(endpoint, tmp_path, tiny_model_dir):
    import signal

    endpoint.delay = 1.0
    proc = start_and_signal_after(build_command(tmp_path, tiny_model_dir, endpoint.url, tmp_path / "b"), endpoint, 2,
                                  signal.SIGTERM)
    assert proc.wait(60) == 143
    time.sleep(1.5)
    assert endpoint.posts == 2  # the six queued items were dropped, not sent


def test_sigkill_in_the_revise_step_and_a_rerun_asks_only_for_what_is_not_on_disk(endpoint, tmp_path, tiny_model_dir):
    import os
    import signal
    import sqlite3
    import subprocess

    out = tmp_path / "built"
    cmd = build_command(tmp_path, tiny_model_dir, endpoint.url, out)
    endpoint.delay = 0.3
    proc = start_and_signal_after(cmd, endpoint, 3, signal.SIGKILL)
    proc.wait()
    cached = sqlite3.connect(out / "cache" / "revisions.sqlite").execute("SELECT COUNT(*) FROM kv").fetchone()[0]
    assert 2 <= cached <= 4 and not (out / "spa.jsonl").exists()
    endpoint.posts, endpoint.delay = 0, 0.0
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert endpoint.posts == 8 - cached  # the answers on disk were not asked for again
    assert len((out / "pairs.jsonl").read_text().splitlines()) == 8
