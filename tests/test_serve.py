"""``bench serve`` on the tiny model: a chat completion on 127.0.0.1, the LLM judge against it, clean Ctrl-C.

One server for the module (each start costs ~50 s on CPU); the tests run in file order and the last one
stops it. The first tests need no vLLM: a port already taken, and readiness that only our own server can
satisfy (a plain socket or a small HTTP server stands in for the other server on the port).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.serve import ServerError

vllm = pytest.mark.vllm


def test_port_in_use_is_refused_at_once_naming_port_and_option(tiny_model_dir):
    import socket

    from typer.testing import CliRunner

    from bench.cli import app

    with socket.socket() as other:  # the server that already holds the port
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        t0 = time.time()
        result = CliRunner().invoke(app, ["serve", tiny_model_dir, "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert f"port {port}" in result.output and "--port" in result.output and "already in use" in result.output
    assert "serving" not in result.output and "Traceback" not in result.output
    assert time.time() - t0 < 30  # no engine was started (a start takes ~50 s)


class _Models:
    """A stand-in OpenAI-compatible server on a port, listing other model names."""

    def __init__(self, names):
        import http.server
        import json

        body = json.dumps({"object": "list", "data": [{"id": n, "object": "model"} for n in names]}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body if self.path.endswith("/models") else b"{}")

            def log_message(self, *a):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_readiness_is_checked_against_our_own_server(tmp_path):
    """A healthy server that serves another model is not ours; our process dying ends the wait at once."""
    from bench.serve import wait_ready

    other = _Models(["someone-elses-model"])
    ours = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(ServerError, match="someone-elses-model"):
            wait_ready(ours, other.url, "tiny", None, timeout=2, log_path=tmp_path / "log")
        ours.kill()
        ours.wait()
        t0 = time.time()
        with pytest.raises(ServerError, match="exited"):
            wait_ready(ours, other.url, "tiny", None, timeout=60, log_path=tmp_path / "log")
        assert time.time() - t0 < 10
        wait_ready(subprocess.Popen(["sleep", "5"]), _Models(["tiny"]).url, "tiny", None, timeout=10, log_path=tmp_path / "log")
    finally:
        ours.kill()
        other.close()


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    from bench.serve import free_port

    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "250", "BENCH_CACHE": str(tmp_path_factory.mktemp("cache"))}
    # Started with SIGINT ignored, as `cmd &` in a script starts it (and everything a test run started that way
    # starts): the Ctrl-C test below must still stop it.
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "bench"), "serve", tiny_model_dir, "--port", str(port),
                             "--name", "tiny"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    deadline = time.time() + 400
    while not any("serving" in line for line in lines):
        assert proc.poll() is None and time.time() < deadline, "".join(lines[-40:])
        time.sleep(1)
    url = re.search(r"http://\S+/v1", "".join(lines)).group(0)
    yield proc, url, port, lines
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


@vllm
def test_serve_answers_a_chat_completion_on_localhost(server):
    from openai import OpenAI

    _, url, port, _ = server
    assert url == f"http://127.0.0.1:{port}/v1"
    client = OpenAI(base_url=url, api_key="EMPTY")
    assert [m.id for m in client.models.list().data] == ["tiny"]
    reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hello!"}], max_tokens=8, temperature=0)
    assert reply.choices[0].message.content and reply.usage.completion_tokens <= 8


@vllm
def test_llm_judge_against_the_served_model(server, tmp_path):
    """Mechanics on a real endpoint: two orders per pair, answers constrained to alpaca_eval's labels so the
    chatgpt annotator's parser reads every one, per-order verdicts combined, and a re-run served from cache."""
    from bench.cache import Cache
    from bench.judges import get

    _, url, _, _ = server
    judge = get("llm", base_url=url, choices=["Output (a)", "Output (b)"], max_tokens=8)
    judge.cache = Cache("calls", tmp_path)
    assert judge.model == "tiny"  # the endpoint's first model
    prompts = [[{"role": "user", "content": q}] for q in ("Name a fruit.", "What is 3 + 4?", "Say hi.")]
    verdicts = judge.compare(prompts, ["Apple.", "7", "Hi!"], ["A car.", "12", "Goodbye."])
    assert all(v.preference in (0.0, 0.5, 1.0) for v in verdicts)
    for v in verdicts:
        assert v.detail["ref_first"][0] in ("Output (a)", "Output (b)")
        assert v.detail["model_first"][0] in ("Output (a)", "Output (b)")
        expected = v.detail["pref_ref_first"] if v.detail["pref_ref_first"] == v.detail["pref_model_first"] else 0.5
        assert v.preference == expected
    assert len(judge.cache) == 6
    judge.client = None  # a re-run must not touch the endpoint
    assert [v.preference for v in judge.compare(prompts, ["Apple.", "7", "Hi!"], ["A car.", "12", "Goodbye."])] == \
        [v.preference for v in verdicts]


@vllm
def test_concurrent_seeded_requests_longer_than_one_prefill_step_do_not_kill_the_server(server):
    """A judge sends seeded requests concurrently. On CPU, vLLM crashed ("CPU Generator does not use offset")
    when chunked prefill split a seeded prompt across steps: 8 prompts of ~900 tokens overflow a 4,096-token
    step. ``bench serve`` turns chunked prefill off on CPU."""
    from concurrent.futures import ThreadPoolExecutor

    from openai import OpenAI

    _, url, _, _ = server
    client = OpenAI(base_url=url, api_key="EMPTY", max_retries=0, timeout=120)
    text = " ".join(f"word{i}" for i in range(300))  # ~900 tokens

    def ask(i):
        reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": f"{i} {text}"}],
                                               max_tokens=2, temperature=0.7, seed=i)
        return reply.choices[0].message.content is not None

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(ask, range(8)))
    assert client.models.list().data  # still up


@vllm
def test_weighted_llm_judge_reads_the_served_models_log_probabilities(server, tmp_path):
    """AlpacaEval 2's weighted annotator on a real endpoint: one token per order, the server's top-5
    log-probabilities come back, and each order's preference is alpaca_eval's reading of them (a random
    tiny model rarely ranks the labels m/M that high: then that order fails, which is counted)."""
    from bench.cache import Cache
    from bench.judges import get
    from bench.judges.llm import parse, second_preferred

    _, url, _, _ = server
    judge = get("llm", base_url=url, annotator="weighted_alpaca_eval_gpt4_turbo")
    judge.cache = Cache("calls", tmp_path)
    prompts = [[{"role": "user", "content": q}] for q in ("Name a fruit.", "What is 3 + 4?")]
    verdicts = judge.compare(prompts, ["Apple.", "7"], ["A car.", "12"])
    assert len(judge.cache) == 4  # one call per order
    for v in verdicts:
        for order, key, flip in (("ref_first", "pref_ref_first", False), ("model_first", "pref_model_first", True)):
            (raw,) = v.detail[order]
            top = raw["logprobs"]["content"][0]["top_logprobs"]
            assert len(top) == 5 and all(t["logprob"] <= 0 for t in top)
            verdict = parse(judge.cfg, raw)
            expected = None if verdict is None else (1 - second_preferred(verdict) if flip else second_preferred(verdict))
            assert v.detail[key] == expected
        if v.preference is not None:
            assert 0 <= v.preference <= 1


@vllm
def test_suite_endpoint_backend_scores_like_hf(server, tiny_model_dir, tmp_path):
    """``bench suite --backend URL`` against ``bench serve``: the server scores the same token ids as lm-eval's
    hf model in-process (prompt log-probabilities via echo), so the metrics agree up to float rounding."""
    from bench.data.readers import data_dir
    from bench.suite import TASKS_DIR, SuiteConfig, run_suite

    if not (data_dir() / "eval").is_dir():
        pytest.skip("data kit not found (set BENCH_DATA)")
    _, url, _, _ = server
    suite = ",".join(str(TASKS_DIR / f) for f in ("figa_truthfulqa.yaml", "figa_winogender.yaml"))
    results = {}
    for backend in ("endpoint", "hf"):
        summary = run_suite(tiny_model_dir, SuiteConfig(suite=suite, backend=backend, url=url, limit=3,
                                                        out_dir=str(tmp_path / backend)))
        results[backend] = {t: {m: v["value"] for m, v in row["metrics"].items()} for t, row in summary["tasks"].items()}
        assert summary["backend"] == backend
    assert results["endpoint"].keys() == results["hf"].keys()
    for task, metrics in results["hf"].items():
        assert results["endpoint"][task] == pytest.approx(metrics, abs=1e-3), task


@vllm
def test_serve_stops_cleanly_on_ctrl_c(server):
    from bench.serve import _healthy

    proc, _, port, lines = server
    proc.send_signal(signal.SIGINT)
    assert proc.wait(90) == 130, "".join(lines[-30:])
    assert not _healthy(f"http://127.0.0.1:{port}/health")
    with pytest.raises(subprocess.CalledProcessError):  # no vLLM process of ours is left behind
        subprocess.run(["pgrep", "-f", f"--port {port}"], check=True, capture_output=True)


def test_a_second_ctrl_c_during_shutdown_cannot_leave_the_server_running():
    """The second SIGINT arrives while stop() waits for a server that ignores the first: the server is
    still killed, and the interrupt is raised afterwards (it used to abort stop() before its SIGKILL)."""
    from bench.serve import stop

    server = subprocess.Popen(["sh", "-c", "trap '' INT; sleep 60 & wait"], start_new_session=True)
    time.sleep(0.3)
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        stop(server, grace=2)
    assert server.poll() is not None
    deadline = time.time() + 10  # nothing left in its process group (once init has reaped the orphan)
    while time.time() < deadline:
        try:
            os.killpg(server.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the server's child outlived stop()")


def test_a_server_that_dies_while_serving_ends_the_wait_with_its_log(tmp_path):
    from bench.serve import Server

    log = tmp_path / "server.log"
    log.write_text("loading\nRuntimeError: out of memory\n")
    proc = subprocess.Popen(["sh", "-c", "exit 3"])
    t0 = time.time()
    with pytest.raises(ServerError, match=r"exited with code 3 while serving(.|\n)*out of memory"):
        Server("http://127.0.0.1:1/v1", proc, log).wait(poll=0.1)
    assert time.time() - t0 < 10


def test_ctrl_c_delivered_to_another_thread_still_stops_the_wait():
    """The kernel may hand SIGINT to any thread; Python then raises it in the main thread only when that
    thread wakes. ``bench serve`` used to sleep for an hour at a time, so such a Ctrl-C went unanswered."""
    from bench.serve import Server

    proc = subprocess.Popen(["sleep", "60"])

    def poke():
        # a thread inherits its creator's signal mask: unblock SIGINT here whatever earlier tests' libraries
        # left blocked in the main thread, or the signal below would stay pending for ever
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        time.sleep(0.5)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # lands on this thread, not the main one

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own, as in `bench serve`
    threading.Thread(target=poke).start()
    t0 = time.time()
    try:
        with pytest.raises(KeyboardInterrupt):
            Server("http://127.0.0.1:1/v1", proc, Path("unused.log")).wait()
        assert time.time() - t0 < 5
    finally:
        signal.signal(signal.SIGINT, previous)
        proc.kill()
