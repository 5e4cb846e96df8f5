"""What a user can throw at Hone gets one line, exit 2 and nothing half written; checks run before work (issue 12).

Read-only and full disks are made for real with a private mount namespace (`unshare -m`, as root: CI runs as
root) and a read-only bind mount or a tiny tmpfs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hone.generate.base import GenParams, Request
from hone.generate.hf import HFGenerator
from hone.records import Generation, Task, read_records, write_records

HONE = [sys.executable, "-m", "hone.cli"]
CAN_MOUNT = os.geteuid() == 0 and shutil.which("unshare") is not None


def _run(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*HONE, *args], capture_output=True, text=True, **kw)


def _one_line_error(done: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit 2 and one `error:` line, the last thing printed (progress lines may come before it), no traceback."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in done.stderr, done.stderr
    for n in needles:
        assert n in errors[0], done.stderr


def _tasks(path: Path, n: int = 4) -> Path:
    write_records(path, [Task(id=f"t{i}", kind="math", prompt=f"What is {i} + 1?", reference=str(i + 1))
                         for i in range(n)])
    return path


def _copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_weights_file_is_one_line_in_generate_and_bench(tiny_model_dir, tmp_path, damage):
    model = _copy_model(tiny_model_dir, tmp_path / "model")
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(4096))
    tasks = _tasks(tmp_path / "t.jsonl")
    _one_line_error(_run(["generate", "--model", str(model), "--tasks", str(tasks), "-o", str(tmp_path / "g.jsonl")]),
                    "model.safetensors: the weights cannot be read")
    _one_line_error(_run(["bench", "--model", str(model), "--tasks", str(tasks), "-o", str(tmp_path / "b")]),
                    "model.safetensors: the weights cannot be read")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "t.jsonl"]


def test_a_judge_that_needs_a_key_refuses_before_the_first_item(tmp_path):
    tasks = tmp_path / "t.jsonl"
    write_records(tasks, [Task(id="o1", kind="open", prompt="Write a haiku.")])
    gens = tmp_path / "g.jsonl"
    write_records(gens, [Generation(id="o1", model="m", output="leaves", finish_reason="stop")])
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")}
    done = _run(["judge", "--tasks", str(tasks), "--generations", str(gens), "-o", str(tmp_path / "v.jsonl"),
                 "--judge", "anthropic"], env=env)
    _one_line_error(done, "ANTHROPIC_API_KEY")
    assert not (tmp_path / "v.jsonl").exists() and not (tmp_path / "v.jsonl.partial").exists()


@pytest.mark.parametrize("args, option", [(["-n", "0"], "-n: "), (["--top-p", "2"], "--top-p: ")])
def test_a_setting_out_of_range_is_one_line_naming_the_option(tiny_model_dir, tmp_path, args, option):
    write_records(tmp_path / "t.jsonl", [Task(id="a", kind="math", prompt="1+1?", reference="2")])
    res = subprocess.run([*HONE, "generate", "--model", str(tiny_model_dir), "--tasks", str(tmp_path / "t.jsonl"),
                          "-o", str(tmp_path / "g.jsonl"), *args], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.startswith(f"error: {option}") and res.stderr.count("\n") == 1, \
        res.stderr
    assert "Traceback" not in res.stderr


def test_non_utf8_input_names_file_and_line(tmp_path):
    src = tmp_path / "latin1.jsonl"
    src.write_bytes(b'{"question": "ok", "answer": "#### 1"}\n{"question": "caf\xe9", "answer": "#### 2"}\n')
    _one_line_error(_run(["tasks", "import", str(src), "--format", "gsm8k", "-o", str(tmp_path / "t.jsonl")]),
                    f"{src}:2: not UTF-8")
    assert not (tmp_path / "t.jsonl").exists()


def test_importers_type_check_their_source_fields(tmp_path):
    src = tmp_path / "gsm.jsonl"
    src.write_text('{"question": "What is 1+1?", "answer": "#### 2"}\n{"question": 42, "answer": "#### 2"}\n'
                   '{"question": "x", "answer": ["#### 2"]}\n')
    _one_line_error(_run(["tasks", "import", str(src), "--format", "gsm8k", "-o", str(tmp_path / "t.jsonl")]),
                    f"{src}:2: field `question` must be a string, got int")
    src.write_text('{"question": "What is 1+1?", "answer": ["#### 2"]}\n')
    _one_line_error(_run(["tasks", "import", str(src), "--format", "gsm8k", "-o", str(tmp_path / "t.jsonl")]),
                    f"{src}:1: field `answer` must be a string, got list")


def test_a_prompt_beyond_the_context_is_an_error_record_and_its_batch_goes_on(tiny_model_dir):
    generator = HFGenerator.from_dir(str(tiny_model_dir), device="cpu")
    normal = [Request(id=f"n{i}", sample=0, messages=[{"role": "user", "content": f"What is {i} + 2?"}])
              for i in range(3)]
    huge = Request(id="huge", sample=0, messages=[{"role": "user", "content": "7 " * 2_000_000}])  # 4 MB
    long = Request(id="long", sample=0, messages=[{"role": "user", "content": "1 2 " * 800}])  # ~3,200 tokens
    params = GenParams(max_new_tokens=8, batch_size=5)
    t0 = time.perf_counter()
    out = {g.id: g for g in generator.generate([normal[0], huge, normal[1], long, normal[2]], params)}
    assert time.perf_counter() - t0 < 60  # the 4 MB prompt is refused without being tokenized
    assert out["huge"].finish_reason == "error" and "characters, far beyond the model's context" in out["huge"].output
    assert out["long"].finish_reason == "error" and "the model's context is 1,024 tokens" in out["long"].output
    assert not out["huge"].retryable and not out["long"].retryable
    alone = {g.id: g.output for g in generator.generate(normal, params)}
    assert {i: out[i].output for i in alone} == alone and all(out[i].finish_reason != "error" for i in alone)


def test_a_batch_that_runs_out_of_memory_is_split_and_retried(tiny_model_dir):
    import torch

    generator = HFGenerator.from_dir(str(tiny_model_dir), device="cpu")
    requests = [Request(id=f"n{i}", sample=0, messages=[{"role": "user", "content": f"What is {i} + 5?"}])
                for i in range(5)]
    params = GenParams(max_new_tokens=8, batch_size=5)
    expected = {g.id: g.output for g in generator.generate(requests, params)}
    assert len(expected) == 5
    real = generator.model.generate
    sizes = []

    def small_memory(**kw):  # this "device" fits at most 2 sequences at once
        sizes.append(kw["input_ids"].shape[0])
        if kw["input_ids"].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(**kw)

    generator.model.generate = small_memory
    got = {g.id: g.output for g in generator.generate(requests, params)}
    assert got == expected
    assert sizes == [5, 2, 3, 1, 2]  # halves, then halves of the half that still did not fit


@pytest.mark.skipif(not CAN_MOUNT, reason="needs root and unshare for a private read-only mount (CI has both)")
def test_read_only_output_folder_is_one_line_naming_it(tiny_model_dir, tmp_path):
    from train_support import addition_rows, write_jsonl

    tasks = _tasks(tmp_path / "t.jsonl")
    data = write_jsonl(tmp_path / "sft.jsonl", addition_rows(8, seed=0))
    ro = tmp_path / "ro"
    ro.mkdir()
    commands = {
        "generate": ["generate", "--model", str(tiny_model_dir), "--tasks", str(tasks), "-o", f"{ro}/g.jsonl"],
        "tasks import": ["tasks", "import", str(tasks), "--format", "jsonl", "-o", f"{ro}/t.jsonl"],
        "train": ["train", "--base", str(tiny_model_dir), "--data", str(data), "-o", f"{ro}/adapter",
                  "--max-steps", "1"],
    }
    for name, args in commands.items():
        script = f"mount --bind -o ro {ro} {ro} && exec {' '.join(map(str, HONE + args))}"
        done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
        _one_line_error(done, str(ro), "Read-only file system")
    assert list(ro.iterdir()) == []


@pytest.mark.skipif(not CAN_MOUNT, reason="needs root and unshare for a private tmpfs (CI has both)")
def test_full_disk_is_one_line_and_the_run_resumes_elsewhere(tiny_model_dir, tmp_path):
    tasks = tmp_path / "t.jsonl"
    write_records(tasks, [Task(id=f"t{i}", kind="math", prompt=f"What is {i} + 1? " * 20, reference="1")
                          for i in range(60)])
    small = tmp_path / "small"
    small.mkdir()
    script = (f"mount -t tmpfs -o size=12k tmpfs {small} && exec "
              + " ".join(map(str, HONE + ["generate", "--model", tiny_model_dir, "--tasks", tasks, "-o",
                                          f"{small}/g.jsonl", "--max-new-tokens", "64", "--batch-size", "8"])))
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    _one_line_error(done, f"{small}/g.jsonl", "No space left on device")


def test_ctrl_c_says_what_was_kept_and_how_to_resume(tiny_model_dir, tmp_path, shared_data):
    tasks = tmp_path / "gsm.jsonl"
    _run(["tasks", "import", str(shared_data / "gsm8k_test_part1.jsonl"), "--format", "gsm8k", "-o", str(tasks)])
    out = tmp_path / "gen.jsonl"
    partial = Path(str(out) + ".partial")
    # Hundreds of items one at a time: on an idle machine the job must still be running when Ctrl-C comes.
    args = [*HONE, "generate", "--model", str(tiny_model_dir), "--tasks", str(tasks), "-o", str(out),
            "--max-new-tokens", "48", "--batch-size", "1"]
    # As a command in the foreground gets it: a test run started in the background (`pytest &`) has SIGINT ignored,
    # and a child inherits that.
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and (not partial.exists() or partial.read_text().count("\n") < 4):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and partial.exists() and not out.exists(), err
    kept = partial.read_text().count("\n")
    assert f"interrupted: kept {kept} finished items in {partial}" in err, err
    assert "resume with: hone generate --model" in err and f"-o {out}" in err, err


def test_version_and_umask(tmp_path, shared_data):
    done = _run(["--version"])
    assert done.returncode == 0 and done.stdout.startswith("hone ")
    out = tmp_path / "t.jsonl"
    done = subprocess.run(["sh", "-c", "umask 002 && exec " + " ".join(
        HONE + ["tasks", "import", str(shared_data / "gsm8k_test_part1.jsonl"), "--format", "gsm8k", "-o", str(out),
                "--limit", "3"])], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o777 == 0o664
    assert (tmp_path / "t.jsonl.manifest.json").stat().st_mode & 0o777 == 0o664


def test_verify_merge_writes_its_own_report_and_never_touches_the_merge(tiny_model_dir, tmp_path):
    from test_merge import peft_adapter

    from hone.merge.run import REPORT_FILE, MergeConfig, run_merge

    good = peft_adapter(tiny_model_dir, tmp_path / "good", r=4, lora_alpha=8, target_modules=["q_proj"])
    merged = tmp_path / "merged"
    run_merge(MergeConfig(), tiny_model_dir, good, merged)
    before = (merged / REPORT_FILE).read_text()
    wrong = tmp_path / "wrong"
    import torch

    torch.manual_seed(7)
    peft_adapter(tiny_model_dir, wrong, r=4, lora_alpha=8, target_modules=["v_proj"])
    done = _run(["verify-merge", "--base", str(tiny_model_dir), "--adapter", str(wrong), "--merged", str(merged)])
    _one_line_error(done, "NOT clean", "merged.verify-merge.json")
    assert (merged / REPORT_FILE).read_text() == before
    own = json.loads((tmp_path / "merged.verify-merge.json").read_text())
    assert own["status"] == "failed" and own["adapter"] == str(wrong.resolve())
