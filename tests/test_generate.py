import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hone.errors import HoneError
from hone.generate.base import GenParams, Request
from hone.generate.hf import HFGenerator
from hone.generate.run import GenerateStageConfig, run_generate
from hone.records import Generation, Task, read_records, write_records

HONE = [sys.executable, "-m", "hone.cli"]


def _tasks(n):
    return [Task(id=f"t{i}", kind="math", prompt=f"What is {i} + {i * 7 % 13}?" + " Think." * (i % 4),
                 reference=str(i + i * 7 % 13)) for i in range(n)]


@pytest.fixture(scope="module")
def generator(tiny_model_dir):
    return HFGenerator.from_dir(str(tiny_model_dir), device="cpu")


def test_batched_greedy_equals_one_at_a_time(generator):
    reqs = [Request(id=t.id, sample=0, messages=t.chat()) for t in _tasks(6)]
    params = GenParams(max_new_tokens=12, batch_size=6)
    batched = {g.id: g.output for g in generator.generate(reqs, params)}
    single = {g.id: g.output for g in generator.generate(reqs, params.model_copy(update={"batch_size": 1}))}
    assert batched == single


def test_sampling_is_seeded_and_gives_n_samples(generator, tmp_path):
    tasks = tmp_path / "t.jsonl"
    write_records(tasks, _tasks(3))
    params = GenParams(max_new_tokens=8, temperature=1.0, n=4, seed=3, batch_size=12)
    make = lambda: generator  # noqa: E731
    config = GenerateStageConfig(params=params, model_ref={"model": "tiny"})
    a = run_generate(config, make, tasks, tmp_path / "a.jsonl").generations
    b = run_generate(config, make, tasks, tmp_path / "b.jsonl").generations
    assert [(g.id, g.sample) for g in a] == [(f"t{i}", s) for i in range(3) for s in range(4)]
    assert [g.output for g in a] == [g.output for g in b]
    assert len({g.output for g in a}) > 1
    assert all(g.tokens <= 8 and g.params["temperature"] == 1.0 for g in a)


def test_stage_is_skipped_when_inputs_match(generator, tmp_path):
    tasks = tmp_path / "t.jsonl"
    write_records(tasks, _tasks(2))
    params = GenParams(max_new_tokens=4)
    calls = []

    def make():
        calls.append(1)
        return generator

    config = GenerateStageConfig(params=params, model_ref={"model": "tiny"})
    skipped = run_generate(config, make, tasks, tmp_path / "g.jsonl").skipped
    assert not skipped
    skipped = run_generate(config, make, tasks, tmp_path / "g.jsonl").skipped
    assert skipped and len(calls) == 1
    other = config.model_copy(update={"params": params.model_copy(update={"max_new_tokens": 5})})
    with pytest.raises(HoneError, match=r"`params.max_new_tokens` was 4 then and is 5 now.*--restart"):
        run_generate(other, make, tasks, tmp_path / "g.jsonl")
    skipped = run_generate(other.model_copy(update={"restart": True}), make, tasks, tmp_path / "g.jsonl").skipped
    assert not skipped


def test_cli_generate_resumes_after_kill(tiny_model_dir, tmp_path, shared_data):
    tasks = tmp_path / "gsm.jsonl"
    subprocess.run([*HONE, "tasks", "import", str(shared_data / "gsm8k_test_part1.jsonl"), "--format", "gsm8k",
                    "-o", str(tasks), "--limit", "60"], check=True, capture_output=True)
    out = tmp_path / "gen.jsonl"
    partial = Path(str(out) + ".partial")
    args = [*HONE, "generate", "--model", str(tiny_model_dir), "--tasks", str(tasks), "-o", str(out),
            "--max-new-tokens", "48", "--batch-size", "2"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not partial.exists() or partial.read_text().count("\n") < 6):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = partial.read_text().splitlines()
    assert 6 <= len(before) < 60 and not out.exists()

    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    final = read_records(out, Generation)
    assert sorted(g.id for g in final) == sorted(json.loads(x)["id"] for x in tasks.read_text().splitlines())
    by_id = {g.id: g for g in final}
    for line in before:  # work finished before the kill is kept, not redone
        g = Generation.model_validate_json(line)
        assert by_id[g.id] == g
    assert not partial.exists()


def test_cli_bad_inputs(tiny_model_dir, tmp_path):
    tasks = tmp_path / "t.jsonl"
    write_records(tasks, _tasks(1))
    cases = [
        (["generate", "--model", str(tmp_path), "--tasks", str(tasks), "-o", str(tmp_path / "o.jsonl")],
         "not a model folder"),
        (["generate", "--model", str(tiny_model_dir), "--tasks", str(tmp_path / "no.jsonl"),
          "-o", str(tmp_path / "o.jsonl")], "no such file"),
        (["tasks", "import", str(tasks), "--format", "xml", "-o", str(tmp_path / "x.jsonl")], "unknown format"),
    ]
    for args, message in cases:
        r = subprocess.run([*HONE, *args], capture_output=True, text=True)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
        assert r.stderr.strip().count("\n") == 0
    assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / "x.jsonl").exists()


class _ChatServer(BaseHTTPRequestHandler):
    calls: list = []
    refuse: set = set()  # questions answered with HTTP 400 (the SDK does not retry those)

    def log_message(self, *a):
        pass

    def _json(self, code, reply):
        data = json.dumps(reply).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path != "/v1/models":
            return self._json(404, {"error": {"message": "no route", "type": "not_found"}})
        self._json(200, {"object": "list", "data": [{"id": "served-llama", "object": "model", "created": 0,
                                                      "owned_by": "test"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append((self.path, body, self.headers.get("Authorization")))
        question = body["messages"][-1]["content"]
        if question in type(self).refuse:
            return self._json(400, {"error": {"message": "overloaded shard", "type": "invalid_request_error"}})
        reply = {"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": f"echo: {question}"}}],
                 "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_openai_backend_against_local_server(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        tasks = tmp_path / "t.jsonl"
        write_records(tasks, _tasks(5))
        out = tmp_path / "g.jsonl"
        env = {**os.environ, "OPENAI_API_KEY": "sk-test-secret-123"}
        r = subprocess.run([*HONE, "generate", "--backend", "openai", "--model", "served-llama",
                            "--base-url", f"http://127.0.0.1:{server.server_port}/v1", "--tasks", str(tasks),
                            "-o", str(out)], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        gens = read_records(out, Generation)
        assert [g.id for g in gens] == [f"t{i}" for i in range(5)]
        assert gens[2].output == "echo: What is 2 + 1? Think. Think." and gens[2].tokens == 3
        assert all(p == "/v1/chat/completions" and b["model"] == "served-llama" for p, b, _ in _ChatServer.calls)
        assert _ChatServer.calls[0][2] == "Bearer sk-test-secret-123"
        for f in tmp_path.iterdir():
            assert "sk-test-secret-123" not in f.read_text()
    finally:
        server.shutdown()


def test_openai_backend_checks_the_server_first_and_never_completes_over_errors(tmp_path):
    tasks = tmp_path / "t.jsonl"
    write_records(tasks, _tasks(5))
    out = tmp_path / "g.jsonl"
    dead = subprocess.run([*HONE, "generate", "--backend", "openai", "--model", "served-llama", "--base-url",
                           "http://127.0.0.1:9/v1", "--tasks", str(tasks), "-o", str(out)], capture_output=True,
                          text=True)
    assert dead.returncode == 2 and "Traceback" not in dead.stderr
    assert dead.stderr.splitlines()[-1].startswith("error: http://127.0.0.1:9/v1: no server answers")
    assert not out.exists()

    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        args = [*HONE, "generate", "--backend", "openai", "--model", "served-llama", "--base-url",
                f"http://127.0.0.1:{server.server_port}/v1", "--tasks", str(tasks), "-o", str(out)]
        _ChatServer.calls.clear()
        _ChatServer.refuse = {_tasks(5)[3].prompt}
        first = subprocess.run(args, capture_output=True, text=True)
        assert first.returncode == 2 and "1 of 5 items ended in errors a re-run may fix" in first.stderr
        manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text())
        assert manifest["status"] == "running"  # not complete: a re-run must not skip the failed item
        assert [g.finish_reason for g in read_records(out, Generation)].count("error") == 1
        _ChatServer.refuse = set()
        calls_before = len(_ChatServer.calls)
        second = subprocess.run(args, capture_output=True, text=True)
        assert second.returncode == 0, second.stderr
        assert len(_ChatServer.calls) == calls_before + 1  # only the failed item was asked again
        assert {g.finish_reason for g in read_records(out, Generation)} == {"stop"}
    finally:
        server.shutdown()
