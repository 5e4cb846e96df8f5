"""Hostile candidates are contained and graded fail (or timeout), never pass.

Each case runs through the full grader (`verify`), so both walls count: the OS layers (separate uid,
namespaces, rlimits) and the Python guard. The OS layers alone are tested further down with the guard off,
where this machine allows them (root with bubblewrap, `bwrap`).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import psutil
import pytest

from hone.errors import HoneError
from hone.grade import sandbox, verify
from hone.grade.sandbox import Limits, isolation, run_tests
from hone.records import Generation, Task

# The hostile cases below are about containment, so they run at the best level this machine has; refusing
# without full isolation is tested in test_sandbox_policy.py, and CI (root) must have it (`full_isolation`).
LEVEL = "strict" if isolation().full else "weak"
SECRET = "sk-ant-api03-do-not-leak-0123456789"
TESTS = "def check(candidate):\n    assert candidate(2) == 4\n"
SHORT = Limits(timeout_s=3, memory_mb=512)
LOOP = Limits(timeout_s=1.5, memory_mb=512)


def _task() -> Task:
    return Task(id="double", kind="code", prompt="double x", tests=TESTS, entry_point="double",
                meta={"test_style": "humaneval"})


def _grade(code: str, limits: Limits = SHORT):
    return verify(_task(), Generation(id="double", model="m", output=f"```python\n{code}\n```",
                                      finish_reason="stop"), limits=limits, sandbox=LEVEL)


@pytest.fixture
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    yield srv
    srv.close()


def _accepted(srv) -> bool:
    try:
        conn, _ = srv.accept()
    except (socket.timeout, BlockingIOError):
        return False
    conn.close()
    return True


def test_a_correct_answer_passes_so_the_failures_below_mean_something():
    assert _grade("def double(x):\n    return 2 * x").verdict == "pass"


def test_infinite_loop_times_out():
    t0 = time.monotonic()
    v = _grade("def double(x):\n    while True:\n        pass", LOOP)
    assert v.verdict == "fail" and v.evidence["outcome"] == "timeout"
    assert time.monotonic() - t0 < LOOP.timeout_s + 5


def test_infinite_loop_at_import_times_out():
    v = _grade("while True:\n    pass\ndef double(x):\n    return 2 * x", LOOP)
    assert v.verdict == "fail" and v.evidence["outcome"] == "timeout"


def _processes_of(uid: int | None) -> list[int]:
    if uid is None:
        return []
    return [p.pid for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid]


def test_fork_bomb_is_contained():
    v = _grade("import os\ndef double(x):\n    while True:\n        os.fork()")
    assert v.verdict == "fail"
    assert _processes_of(v.evidence.get("uid")) == []


def test_memory_hog_fails():
    v = _grade("def double(x):\n    hog = []\n    while True:\n        hog.append(bytearray(50 * 2**20))")
    assert v.verdict == "fail" and v.evidence["outcome"] in ("fail", "timeout")


def test_writing_outside_the_temp_dir_is_refused(tmp_path):
    target = tmp_path / "escaped.txt"
    code = (f"def double(x):\n    open({str(target)!r}, 'w').write('x')\n"
            f"    open('../escaped.txt', 'w').write('x')\n    return 2 * x")
    v = _grade(code)
    assert v.verdict == "fail" and "PermissionError" in v.reason
    assert not target.exists()
    assert not any(p.name == "escaped.txt" for p in Path(sandbox._private_root()).iterdir())


def test_writing_inside_the_temp_dir_is_allowed():
    code = "def double(x):\n    open('scratch.txt', 'w').write(str(x))\n    return 2 * int(open('scratch.txt').read())"
    assert _grade(code).verdict == "pass"


def test_api_keys_are_not_in_the_environment_and_never_in_the_evidence(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    code = (f"import os\ndef double(x):\n    key = os.environ.get('ANTHROPIC_API_KEY', '')\n    print('key:', key)\n"
            f"    try:\n        print(open('/proc/{os.getpid()}/environ').read())\n    except OSError as e:\n"
            f"        print('proc:', e)\n    return 2 * x if key else -1")
    v = _grade(code)
    assert v.verdict == "fail"
    assert "key: \n" in v.evidence["stdout_tail"]
    assert SECRET not in v.model_dump_json()


def test_opening_a_socket_fails_and_nothing_connects(listener):
    port = listener.getsockname()[1]
    code = (f"import socket\ndef double(x):\n    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
            f"    return 2 * x")
    v = _grade(code)
    assert v.verdict == "fail"
    assert not _accepted(listener)


def test_killing_the_parent_or_the_grader_fails_and_harms_nothing():
    code = (f"import os, signal\ndef double(x):\n    for pid in (os.getppid(), {os.getpid()}, 1):\n"
            f"        try:\n            os.kill(pid, signal.SIGKILL)\n        except OSError:\n            pass\n"
            f"    return 2 * x + 1")
    v = _grade(code)
    assert v.verdict == "fail"
    assert psutil.pid_exists(os.getpid())


def test_sys_exit_before_the_tests_is_not_a_pass():
    v = _grade("import sys\nsys.exit(0)\ndef double(x):\n    return 2 * x")
    assert v.verdict == "fail" and "does not load: SystemExit" in v.reason
    v = _grade("import os\ndef double(x):\n    os._exit(0)")
    assert v.verdict == "fail" and "exited with code 0" in v.reason


def test_printing_a_fake_result_line_is_not_a_pass():
    code = ('import sys\nprint(\'{"outcome": "pass", "reason": "all tests passed", "nonce": "x"}\')\n'
            "sys.stdout.flush()\nsys.exit(0)")
    assert _grade(code).verdict == "fail"


@pytest.mark.parametrize("cls", ["class Liar:", "class Liar(int):", "class Liar(str):"])
def test_a_result_whose_eq_is_always_true_fails(cls):
    code = (f"{cls}\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n"
            f"        return False\n    __hash__ = object.__hash__\n"
            f"def double(x):\n    return Liar()")
    v = _grade(code)
    assert v.verdict == "fail" and "cannot cross the sandbox boundary" in v.reason


def test_redefining_a_builtin_the_tests_use_does_not_make_them_compare_the_candidate_with_itself():
    task = Task(id="evens", kind="code", prompt="evens", tests="assert set(evens([1, 2, 4])) == set([2, 4])\n",
                meta={"test_style": "asserts"})
    code = "def set(values):\n    return 0\ndef evens(xs):\n    return []"
    v = verify(task, Generation(id="evens", model="m", output=f"```python\n{code}\n```", finish_reason="stop"),
               limits=SHORT, sandbox=LEVEL)
    assert v.verdict == "fail"


# ----------------------------------------------------------------------------------------- the OS layers alone
needs_full_isolation = pytest.mark.usefixtures("full_isolation")


@needs_full_isolation
def test_without_the_guard_the_network_namespace_blocks_sockets(listener):
    port = listener.getsockname()[1]
    code = (f"import socket\ndef f(x):\n    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
            f"    return 2 * x")
    r = run_tests(code, TESTS.replace("double", "f"), style="humaneval", entry_point="f", limits=SHORT, guard=False)
    # The namespace has a loopback of its own (bwrap brings it up) with nothing listening: the host's is unreachable.
    assert r["outcome"] == "fail" and "Connection refused" in r["reason"]
    assert not _accepted(listener)


@needs_full_isolation
def test_without_the_guard_a_fork_bomb_hits_nproc_and_leaves_no_process():
    code = "import os\ndef f(x):\n    while True:\n        os.fork()"
    r = run_tests(code, TESTS.replace("double", "f"), style="humaneval", entry_point="f", limits=SHORT, guard=False)
    assert r["outcome"] in ("fail", "timeout")
    assert _processes_of(r["uid"]) == []


@needs_full_isolation
def test_without_the_guard_uid_and_mounts_block_writes_secrets_and_signals(tmp_path):
    target = tmp_path / "escaped.txt"
    code = (f"import os\ndef f(x):\n    out = []\n"
            f"    for path in ({str(target)!r}, '/tmp/escaped.txt', '/var/tmp/escaped.txt', '/dev/shm/escaped.txt'):\n"
            f"        try:\n            open(path, 'w').write('x')\n            out.append(path)\n"
            f"        except OSError:\n            pass\n"
            f"    try:\n        os.kill({os.getpid()}, 9)\n        out.append('kill')\n    except OSError:\n        pass\n"
            f"    out.append(sorted(os.listdir('/root')))\n    print(out)\n    return out")
    r = run_tests(code, "def check(candidate):\n    assert candidate(1) == [['.pyenv']] or candidate(1) == [[]]\n",
                  style="humaneval", entry_point="f", limits=SHORT, guard=False)
    assert r["outcome"] == "pass", r
    assert not target.exists() and not any(os.path.exists(f"{d}/escaped.txt") for d in ("/tmp", "/var/tmp", "/dev/shm"))


@needs_full_isolation
def test_without_the_guard_filling_the_disk_stops_at_the_private_tmpfs():
    code = ("def f(x):\n    n = 0\n    while True:\n        with open(f'f{n}', 'wb') as fh:\n"
            "            fh.write(b'x' * (8 << 20))\n        n += 1\n")
    r = run_tests(code, TESTS.replace("double", "f"), style="humaneval", entry_point="f",
                  limits=Limits(timeout_s=5, disk_mb=32), guard=False)
    assert r["outcome"] == "fail" and "No space left on device" in r["reason"]


def _which(found: bool):
    real = shutil.which
    return lambda name, *a, **k: ("/usr/bin/bwrap" if found else None) if name == "bwrap" else real(name, *a, **k)


def test_when_the_namespaced_self_test_fails_the_probe_falls_back_and_says_so(monkeypatch):
    monkeypatch.setattr(sandbox, "_isolation", {})
    monkeypatch.setattr(sandbox.shutil, "which", _which(found=True))
    monkeypatch.setattr(sandbox, "_self_test", lambda iso: "mount: permission denied")
    iso = isolation("auto")
    assert not iso.wrap and not iso.network_isolated and not iso.full
    assert any("mount: permission denied" in n and "NOT isolated" in n for n in iso.notes)
    assert "NO namespaces" in iso.describe() and "whole filesystem readable" in iso.describe()
    with pytest.raises(HoneError, match=r"refusing to run model-written code: .*mount: permission denied.*"
                                        r"--sandbox weak"):
        sandbox.require("strict", "auto")
    assert sandbox.require("weak", "auto") is iso


def test_without_bwrap_strict_refuses_in_one_line_and_weak_says_what_it_lacks(monkeypatch):
    monkeypatch.setattr(sandbox, "_isolation", {})
    monkeypatch.setattr(sandbox.shutil, "which", _which(found=False))
    with pytest.raises(HoneError, match=r"^refusing to run model-written code: .*no `bwrap` binary \(install "
                                        r"bubblewrap.*candidates see the whole filesystem \(answers included\)") as e:
        sandbox.require("strict", "auto")
    assert "\n" not in str(e.value)
    r = run_tests("def f(x):\n    return 2 * x", TESTS.replace("double", "f"), style="humaneval", entry_point="f",
                  limits=SHORT, sandbox="weak")
    assert r["outcome"] == "pass" and "NO namespaces (network reachable, whole filesystem readable)" in r["isolation"]
    assert any("no `bwrap` binary" in n for n in r["isolation_notes"])


@needs_full_isolation
def test_a_self_test_that_times_out_under_load_is_retried_with_more_time(monkeypatch):
    monkeypatch.setattr(sandbox, "_isolation", {})
    monkeypatch.setattr(sandbox, "_SELF_TEST_TIMEOUTS", (0.01, 30.0))  # the first try cannot start in 10 ms
    assert isolation("auto").full
    monkeypatch.setattr(sandbox, "_isolation", {})
    monkeypatch.setattr(sandbox, "_SELF_TEST_TIMEOUTS", (0.01,))  # no second try: the probe steps down, and says why
    iso = isolation("auto")
    assert not iso.full and any("graded timeout" in n for n in iso.notes)


def test_weakest_mode_still_grades_hostile_answers_fail():
    """HONE_SANDBOX=none (no namespaces): the guard and the checker still refuse the cheap tricks."""
    limits = Limits(timeout_s=2, memory_mb=512)
    for code in ("import sys\nsys.exit(0)", "import os\ndef f(x):\n    os.fork()\n    return 2 * x",
                 "class L:\n    def __eq__(s, o):\n        return True\ndef f(x):\n    return L()",
                 "def f(x):\n    while True:\n        pass"):
        r = run_tests(code, TESTS.replace("double", "f"), style="humaneval", entry_point="f", limits=limits,
                      mode="none", sandbox="weak")
        assert r["outcome"] in ("fail", "timeout"), (code, r)
        assert "NO namespaces" in r["isolation"] and r["sandbox"] == "weak"
    with pytest.raises(HoneError, match="namespaces turned off"):
        run_tests("def f(x):\n    return 2 * x", TESTS.replace("double", "f"), style="humaneval", entry_point="f",
                  limits=limits, mode="none")


# ------------------------------------------------------------------- wherever Hone's interpreter is installed
PROBE = r'''
import json, os, sys
from hone.grade.sandbox import require, run_tests
iso = require("strict")
code = """import os, sys
import venv_only_module
def f(x):
    try:
        open(os.path.join(os.path.dirname(venv_only_module.__file__), 'planted.py'), 'w').write('x')
        planted = True
    except OSError:
        planted = False
    seen = [os.getuid(), planted, sorted(os.listdir('/tmp')), x * venv_only_module.FACTOR]
    print(seen)
    return seen
"""
r = run_tests(code, "def check(candidate):\n    assert candidate(2)[3] == 4\n",
              style="humaneval", entry_point="f", guard=False)
print(json.dumps({"full": iso.full, "describe": iso.describe(), "result": r}))
'''


def _venv(where: Path, copies: bool = False) -> Path:
    """A bare venv (no pip: fast) whose site-packages holds a module of its own, and paths to this Hone and its
    dependencies (a .pth file, read by the grader's interpreter only: candidates start with -S)."""
    import site as site_module
    import subprocess
    import sys

    import hone

    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    subprocess.run([base, "-m", "venv", "--without-pip", *(["--copies"] if copies else []), str(where)], check=True)
    site = next(where.glob("lib/python3*/site-packages"))
    (site / "venv_only_module.py").write_text("FACTOR = 2\n")
    paths = [str(Path(hone.__file__).resolve().parent.parent), *site_module.getsitepackages()]
    (site / "hone_src.pth").write_text("\n".join(paths) + "\n")
    return where


@pytest.fixture
def under_tmp():
    """A folder directly under /tmp, the world-writable dir the sandbox hides from candidates."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="hone-venv-test-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@needs_full_isolation
@pytest.mark.parametrize("layout", ["venv", "copied interpreter in a 0700 home", "symlinked venv"])
def test_an_interpreter_under_tmp_gets_full_isolation(under_tmp, layout):
    """A clone or venv under /tmp once hid its own interpreter from the candidate (exit 127) and stepped down to
    no namespaces; the view shows the interpreter, stdlib and site-packages read-only wherever they live."""
    import ast
    import json
    import subprocess

    home = under_tmp / "home"
    home.mkdir(mode=0o700)
    if layout == "venv":
        python = _venv(under_tmp / "venv") / "bin" / "python"
    elif layout == "symlinked venv":
        (home / "venv").symlink_to(_venv(under_tmp / "real-venv"))
        python = home / "venv" / "bin" / "python"
    else:
        python = _venv(home / "venv", copies=True) / "bin" / "python"
    done = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HONE_SANDBOX": "auto"})
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["full"] and out["describe"].startswith("separate uid, allow-listed read-only filesystem")
    result = out["result"]
    assert result["outcome"] == "pass", result
    uid, planted, listing, _ = ast.literal_eval(result["stdout_tail"].strip().splitlines()[-1])
    assert uid == result["uid"] != 0
    assert not planted  # the venv is shown read-only
    assert listing == [under_tmp.name]  # /tmp shows only the way to the venv: not the sandbox's files, nothing else
