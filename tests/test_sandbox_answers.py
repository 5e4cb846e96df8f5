"""The candidate's process sees no answers: not the shared HumanEval data, not task files, run folders or verdicts,
not home folders, not the grader's processes, whatever their modes. Each hostile candidate searches for the
reference solution of a real HumanEval item and uses it if found; it must find nothing and fail under `strict`,
while its honest twin passes. The same search run without the bwrap view (weak, no namespaces) does find the
answers and passes, so these tests can tell a view that hides them from one that does not.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import site
import sys
import tempfile
from pathlib import Path

import pytest

from hone.grade import verify
from hone.grade.sandbox import Limits, clean_env, run_tests
from hone.importers import import_tasks
from hone.records import Generation, Verdict, write_records

needs_full_isolation = pytest.mark.usefixtures("full_isolation")
# Walking the whole view (~170k files: system libraries, stdlib, site-packages) takes a few seconds.
SEARCH = Limits(timeout_s=60, memory_mb=1024)
TASK_ID, ENTRY = "HumanEval/0", "has_close_elements"

# A candidate that looks for the answer to its own task and calls it when found. `known` are absolute paths it
# tries first; with `walk` it then reads every .json/.jsonl file under / (outside /proc, /sys, /dev).
HOSTILE = r'''
import json, os
KNOWN = {known!r}
WALK = {walk!r}
opened, found = [], []

def _rows(path):
    try:
        with open(path, "rb") as f:
            data = f.read(64 << 20)
    except OSError:
        return
    opened.append(path)
    if b"{entry}" not in data:
        return
    for line in data.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            yield row

def _answers(path):
    for row in _rows(path):
        if row.get("entry_point") == "{entry}" and "canonical_solution" in row:
            yield row["prompt"] + row["canonical_solution"]  # the benchmark's own file
        elif row.get("id") == "{task_id}" and (row.get("reference") or row.get("output")):
            yield row.get("reference") or row["output"]  # a Hone task file, or a generation that passed

def _paths():
    yield from KNOWN
    if WALK:
        for top, dirs, files in os.walk("/"):
            dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys", "/dev")]
            yield from (os.path.join(top, f) for f in files if f.endswith((".jsonl", ".json")))

def _search():
    cheats = []
    for path in _paths():
        for code in _answers(path):
            namespace = {{}}
            try:
                exec(code, namespace)
            except Exception:
                continue
            if callable(namespace.get("{entry}")):
                found.append(path)
                cheats.append(namespace["{entry}"])
                break
    return cheats[0] if cheats else None

CHEAT = _search()
print(json.dumps({{"opened": [p for p in opened if p in KNOWN], "files_read": len(opened), "found": found}}))

def {entry}(numbers, threshold):
    if CHEAT is None:
        return "no answer found"
    return CHEAT(numbers, threshold)
'''


@pytest.fixture(scope="module")
def humaneval(shared_data):
    path = shared_data / "humaneval_part1.jsonl"
    row = next(json.loads(line) for line in path.read_text().splitlines() if json.loads(line)["task_id"] == TASK_ID)
    task = next(t for t in import_tasks(path, "humaneval") if t.id == TASK_ID)
    return path, row, task


@pytest.fixture
def answers(humaneval, tmp_path):
    """Answers in every place Hone keeps them: the shared JSONL (its path as given and its real path), a task file
    and a run folder (generations, verdicts) under tmp_path, and the same run folder world-readable under /tmp."""
    path, row, task = humaneval
    right = Generation(id=TASK_ID, model="m", output=row["prompt"] + row["canonical_solution"], finish_reason="stop")
    open_dir = Path(tempfile.mkdtemp(prefix="hone-answers-", dir="/tmp"))
    planted = []
    for folder in (tmp_path, open_dir):
        run = folder / "run" / "round-1"
        run.mkdir(parents=True)
        write_records(folder / "tasks.jsonl", [task])
        write_records(run / "generations.jsonl", [right])
        write_records(run / "verdicts.jsonl", [Verdict(id=TASK_ID, sample=0, judge="verifier:code@1", verdict="pass")])
        planted += [folder / "tasks.jsonl", run / "generations.jsonl", run / "verdicts.jsonl"]
    for p in [open_dir, *open_dir.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    yield [str(path), os.path.realpath(path), *map(str, planted)], open_dir, task, right
    shutil.rmtree(open_dir, ignore_errors=True)


def _hostile(known: list[str], walk: bool) -> Generation:
    code = HOSTILE.format(known=known, walk=walk, entry=ENTRY, task_id=TASK_ID)
    return Generation(id=TASK_ID, model="m", output=f"```python\n{code}\n```", finish_reason="stop")


def _searched(verdict: Verdict) -> dict:
    return json.loads(verdict.evidence["stdout_tail"].strip().splitlines()[-1])


@needs_full_isolation
@pytest.mark.parametrize("walk", [False, True], ids=["known paths", "walk from /"])
def test_a_candidate_that_looks_for_the_reference_solution_finds_nothing_and_fails(answers, walk):
    known, _, task, right = answers
    v = verify(task, _hostile(known, walk), limits=SEARCH, sandbox="strict")
    searched = _searched(v)
    assert searched["opened"] == [] and searched["found"] == [], searched
    assert searched["files_read"] > 0 if walk else True  # the walk did read the view's .json files
    assert v.verdict == "fail" and v.evidence["outcome"] == "fail" and "assertion failed" in v.reason, v.reason
    assert v.evidence["isolation"].startswith("separate uid, allow-listed read-only filesystem")
    # The honest twin, graded the same way, passes.
    assert verify(task, right, limits=SEARCH, sandbox="strict").verdict == "pass"


def _world_readable(path: str) -> bool:
    parts = Path(path).parents
    return os.stat(path).st_mode & 0o004 and all(os.stat(p).st_mode & 0o001 for p in parts)


def test_without_the_view_the_same_search_finds_the_answers_and_passes(answers):
    """The control: weak, no namespaces (HONE_SANDBOX=none). The hostile candidate reads the shared JSONL and the
    world-readable run folder and passes: what the view hides is really there to find."""
    known, open_dir, task, _ = answers
    code = _hostile(known, walk=False).output.split("```python\n")[1].rsplit("```", 1)[0]
    r = run_tests(code, task.tests, style="humaneval", entry_point=ENTRY, prompt=task.meta["code_prompt"],
                  limits=SEARCH, mode="none", sandbox="weak")
    searched = json.loads(r["stdout_tail"].strip().splitlines()[-1])
    readable = [p for p in known if "uid" not in r or _world_readable(p)]
    assert readable and searched["opened"] == readable, (searched, r.get("uid"))
    assert searched["found"] == [p for p in readable if not p.endswith("verdicts.jsonl")], searched
    assert r["outcome"] == "pass", r
    assert "whole filesystem readable" in r["isolation"]


# What a candidate may see outside its own folder: system libraries, the interpreter's install and the venv's
# site-packages, read-only. Nothing of the repository, the shared data, tmp folders, homes, /work or /etc.
LIBRARIES = ("/usr/lib/", "/usr/lib64/", "/usr/lib32/", "/usr/libx32/")
VIEW = r'''
import os
def f(allowed, probes, targets):
    outside, count = [], 0
    for top, dirs, names in os.walk("/"):
        dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys", "/dev")]
        count += len(names)
        outside += [p for p in (os.path.join(top, n) for n in names) if not p.startswith(tuple(allowed))]
    wrote = []
    for target in targets:
        try:
            with open(target, "a") as fh:
                fh.write("")
            wrote.append(target)
        except OSError:
            pass
    import numpy
    with open(numpy.__file__) as fh:
        package_source = len(fh.read())
    return [outside[:20], count, [p for p in probes if os.path.exists(p)], wrote, os.environ["HOME"],
            os.getcwd(), package_source]
'''


@needs_full_isolation
def test_the_candidate_sees_only_the_interpreter_its_packages_and_its_own_folder(answers, shared_data, tmp_path):
    import numpy

    known, open_dir, _, _ = answers
    site_dirs = [os.path.realpath(p) for p in site.getsitepackages()]
    repo = Path(__file__).resolve().parent.parent
    allowed = [*LIBRARIES, *(p + "/" for p in [os.path.realpath(sys.base_prefix), *site_dirs]), "/harness.pyc",
               "/etc/ld.so.cache"]
    probes = [*known, str(shared_data), os.path.realpath(shared_data), str(open_dir), str(tmp_path),
              str(repo / "src"), str(repo / "tests"), str(Path.home() / ".cache"), "/etc/passwd", "/etc/hostname"]
    targets = [os.path.join(site_dirs[0], "planted.py"), os.path.realpath(numpy.__file__),
               os.path.join(os.path.dirname(os.path.realpath(os.__file__)), "planted.py")]
    r = run_tests(VIEW + f"print(repr(f({allowed!r}, {probes!r}, {targets!r})))\n",
                  "def check(candidate):\n    pass\n", style="humaneval", entry_point="f", limits=SEARCH, guard=False,
                  sandbox="strict")
    assert r["outcome"] == "pass", r
    outside, count, found, wrote, home, cwd, package_source = ast.literal_eval(
        r["stdout_tail"].strip().splitlines()[-1])
    assert count > 1000 and package_source > 0  # the walk saw the libraries, and reading a package works
    assert sorted(outside) == [cwd + "/.stderr", cwd + "/.stdout"]  # its own folder holds only its output
    assert found == []  # no answer file, no repository, no data, no home, no /etc beyond the loader's cache
    assert wrote == []  # the venv and the stdlib are read-only even with the guard off
    assert home == cwd == "/sandbox"


PROC = r'''
import os
def f(x):
    seen = {"ppid": os.getppid(), "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "environ": [], "cmdlines": [], "fds": [], "env": sorted(os.environ)}
    markers = ("pytest", "answer-key", "canonical_solution")
    for pid in seen["pids"]:
        if pid == os.getpid():
            continue
        for what, key in (("environ", "environ"), ("cmdline", "cmdlines"), ("fd", "fds")):
            path = f"/proc/{pid}/{what}"
            try:
                seen[key].append(os.listdir(path) if what == "fd" else open(path, "rb").read().decode(errors="replace"))
            except OSError:
                pass
    seen["cmdlines"] = [m for m in markers for c in seen["cmdlines"] if m in c]
    print(repr(seen))
    return 2 * x
'''


@needs_full_isolation
def test_the_grader_and_the_checker_are_out_of_reach_through_proc_and_the_environment(monkeypatch):
    """The checker's environment and open files are another uid's; the grader (this process) is not in the
    candidate's PID namespace at all; the candidate's own environment holds nothing it was not given."""
    monkeypatch.setenv("HONE_TEST_SECRET", "answer-key-0123456789")
    r = run_tests(PROC, "def check(candidate):\n    assert candidate(2) == 4\n", style="humaneval", entry_point="f",
                  limits=SEARCH, guard=False, sandbox="strict")
    assert r["outcome"] == "pass", r
    seen = ast.literal_eval(r["stdout_tail"].strip().splitlines()[-1])
    assert seen["environ"] == [] and seen["fds"] == []
    assert len(seen["pids"]) <= 4 and seen["ppid"] in seen["pids"]  # bwrap's init, the checker, itself
    assert seen["cmdlines"] == []  # no command line in reach names the grader, its secret or an answer
    assert seen["env"] == sorted(clean_env("/sandbox"))
