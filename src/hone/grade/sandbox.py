"""Run candidate code with its task's tests in a separate, limited process tree, and read back one result.

Layers, outermost first (docs/sandbox.md says what each does and does not protect against):
* a new session (process group) killed as a whole at the wall-clock limit;
* bubblewrap (`bwrap`): a new, empty root filesystem that shows only an allow-list, read-only (the system's
  shared libraries, the interpreter, its standard library and site-packages) plus the candidate's own empty
  tmpfs; no data, task, run, cache or home folder exists in it, whatever its mode on the host; and network,
  PID, IPC and UTS namespaces (no network; the tree dies with its first process; a private /proc);
* as root, the candidate runs under a fresh unprivileged uid, in its own folder (the only place it can write),
  which also makes RLIMIT_NPROC a real cap on forks;
* resource limits on the candidate: CPU time, address space, file size, processes, open files, no core dumps;
* an empty environment (no API keys), stdin closed;
* inside the candidate's interpreter, a Python audit-hook guard (harness.install_guard);
* the verdict comes from a separate checker process that only ever sees built-in values (harness.py).

Anything less than all of these is refused for model-written code unless the caller chose the "weak" level
(`require`): a sandbox that quietly steps down is worse than none, because the numbers still look trusted.
"""

from __future__ import annotations

import atexit
import json
import os
import py_compile
import random
import secrets
import shutil
import site
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hone.errors import HoneError
from hone.redaction import strip_secrets

_HARNESS = Path(__file__).with_name("harness.py")
# Namespaces and process handling for bwrap; the filesystem view is added by `view_args`.
_BWRAP_FLAGS = ("--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--die-with-parent", "--new-session")
# As root, the checker keeps only what it needs: hand its folder and output files to the candidate's uid, switch
# to that uid, kill what is left under it, and read the candidate's output files back.
_CHECKER_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_SETUID", "CAP_SETGID", "CAP_KILL")
# What the view shows besides the interpreter: the shared libraries it and compiled extension modules load
# (directories, or the merged-/usr symlinks to them) and the dynamic loader's cache. No /etc beyond that.
_SYSTEM_PATHS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32", "/lib", "/lib64", "/lib32", "/libx32",
                 "/etc/ld.so.cache")
WORKDIR = "/sandbox"  # the candidate's own folder inside the view
HARNESS_IN_VIEW = "/harness.pyc"
_UNWRAPPED = ": candidates see the whole filesystem (answers included) and the network is NOT isolated"
# Unprivileged uids for candidates (root only): far above ordinary accounts, random per run.
_UID_RANGE = (1_000_000, 1_900_000)
# The self-test runs a correct answer under the full setup; on a loaded machine it is retried with more time
# (each entry is one attempt's wall-clock limit) before the probe concludes that isolation is unavailable.
_SELF_TEST_TIMEOUTS = (30.0, 90.0)
LEVELS = ("strict", "weak")
_lock = threading.RLock()
_isolation: dict[str, "Isolation"] = {}
_root: str | None = None
_compiled: str | None = None


@dataclass(frozen=True)
class Limits:
    """Per-candidate limits. `timeout_s` is wall clock for the whole test run, candidate start-up included."""

    timeout_s: float = 10.0
    memory_mb: int = 2048
    file_mb: int = 16
    disk_mb: int = 64  # the candidate's folder, a private tmpfs inside the bwrap view
    nproc: int = 32
    nofile: int = 128
    cpu_s: float | None = None  # default: the wall-clock timeout + 1 s

    def as_job(self) -> dict:
        d = asdict(self)
        d["cpu_s"] = self.cpu_s if self.cpu_s is not None else self.timeout_s + 1
        return d


@dataclass(frozen=True)
class Isolation:
    """What this machine lets the sandbox do; recorded in every code verdict's evidence."""

    drop_uid: bool
    wrap: tuple[str, ...]  # the bwrap command line up to the program (namespaces and the view); () without
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def network_isolated(self) -> bool:
        return bool(self.wrap)

    @property
    def full(self) -> bool:
        """Every layer: separate uid, the allow-listed filesystem view and the namespaces."""
        return self.drop_uid and bool(self.wrap)

    def missing(self) -> list[str]:
        """What stops this setup from being full isolation, in words a user can act on."""
        why = []
        if not self.wrap:
            why.append(next((n for n in self.notes if n.endswith(_UNWRAPPED)), "no bwrap sandbox" + _UNWRAPPED))
        if not self.drop_uid:
            why.append("candidates would run under the grader's own uid ("
                       + ("the interpreter is not reachable by other users" if os.geteuid() == 0 else
                          "a separate uid needs Hone to run as root") + ")")
        return why

    def describe(self) -> str:
        parts = ["separate uid" if self.drop_uid else "same uid as the grader"]
        parts.append("allow-listed read-only filesystem, network, pid and mount namespaces (bwrap)" if self.wrap
                     else "NO namespaces (network reachable, whole filesystem readable)")
        return ", ".join(parts) + "; rlimits; Python guard"


def _python_paths() -> list[str]:
    """Real paths of everything the sandbox's interpreters load: binary, stdlib, its compiled modules, libpython
    (when shared) and the site dirs (a venv's own, not the rest of the venv)."""
    import sysconfig

    config = sysconfig.get_config_var
    paths = [sys.executable, sysconfig.get_paths()["stdlib"], *_site_paths()]
    paths += [p for p in (config("DESTSHARED"), os.path.join(config("LIBDIR") or "", config("INSTSONAME") or ""))
              if p and os.path.exists(p)]
    return sorted({os.path.realpath(p) for p in paths})


def _outermost(paths: list[str]) -> list[str]:
    """`paths` without those inside another of them."""
    out: list[str] = []
    for p in sorted(set(paths), key=len):
        if not any(p == o or p.startswith(o.rstrip(os.sep) + os.sep) for o in out):
            out.append(p)
    return out


def view_args(python_paths: list[str]) -> list[str]:
    """bwrap arguments for the candidate's filesystem: an empty root in which only the system's libraries and
    `python_paths` are bind-mounted read-only at their real paths (each folder on the way is created, mode 755,
    empty but for the next step: a venv in a 0700 home or under /tmp is reachable, nothing beside it is), a
    private /proc and a minimal /dev."""
    args: list[str] = []
    binds = []
    for path in _SYSTEM_PATHS:
        if os.path.islink(path):  # merged /usr: /lib -> usr/lib
            args += ["--symlink", os.readlink(path), path]
        elif os.path.exists(path):
            binds.append(os.path.realpath(path))
    binds = _outermost([*binds, *python_paths])
    folders = {str(parent) for b in binds for parent in Path(b).parents if str(parent) != "/"}
    for folder in sorted(folders, key=lambda f: (f.count(os.sep), f)):
        args += ["--perms", "0755", "--dir", folder]
    for path in binds:
        args += ["--ro-bind", path, path]
    return [*args, "--proc", "/proc", "--dev", "/dev"]


def blocked_ancestors(paths: list[str]) -> tuple[tuple[str, str], ...]:
    """(dir, entry) for each dir on the way to `paths` that other users cannot traverse (e.g. /root, 0700)."""
    found: set[tuple[str, str]] = set()
    for path in paths:
        parts = Path(path).parts
        for i in range(1, len(parts) - 1):
            parent = os.path.join(*parts[: i + 1])
            try:
                if not os.stat(parent).st_mode & 0o001:
                    found.add((parent, parts[i + 1]))
            except OSError:
                break
    return tuple(sorted(found))


def isolation(mode: str | None = None) -> Isolation:
    """Probe once per process. `mode` (or HONE_SANDBOX) = "auto" | "none" forces the weakest setup for tests."""
    mode = mode or os.environ.get("HONE_SANDBOX", "auto")
    with _lock:
        if mode not in _isolation:
            _isolation[mode] = _probe_isolation(mode)
        return _isolation[mode]


def _probe_isolation(mode: str) -> Isolation:
    if mode not in ("auto", "none"):
        raise HoneError(f"HONE_SANDBOX={mode!r}: use auto or none")
    root = os.geteuid() == 0
    if mode == "none":
        return _without_namespaces(root, "namespaces turned off (HONE_SANDBOX=none)")
    exe = shutil.which("bwrap")
    if not exe:
        return _without_namespaces(root, "no `bwrap` binary (install bubblewrap, e.g. `apt-get install "
                                         "bubblewrap`)")
    privileges = [arg for cap in _CHECKER_CAPS for arg in ("--cap-add", cap)] if root else ["--unshare-user"]
    wrapped = Isolation(drop_uid=root, wrap=(exe, *_BWRAP_FLAGS, *(["--cap-drop", "ALL"] if root else []),
                                             *privileges, *view_args(_python_paths())))
    why = _self_test(wrapped)
    if why is None:
        return wrapped
    return _without_namespaces(root, f"`bwrap` failed ({why[:200]})")


def _self_test(iso: Isolation) -> str | None:
    """Grade one correct answer with this setup (mounts or uid changes can fail where namespaces work).

    Only a run that went wrong for a reason other than time is final: a timeout on a busy machine is retried
    with the next, longer limit of _SELF_TEST_TIMEOUTS, so load alone never steps the sandbox down.
    """
    why = "no self-test ran"
    for timeout in _SELF_TEST_TIMEOUTS:
        result = _run(iso, "def inc(x):\n    return x + 1\n", "def check(candidate):\n    assert candidate(1) == 2\n",
                      style="humaneval", entry_point="inc", prompt=None, limits=Limits(timeout_s=timeout), guard=True)
        if result["outcome"] == "pass":
            return None
        why = f"a self-test answer was graded {result['outcome']}: {result['reason']}"
        if result["outcome"] != "timeout":
            return why
    return why


def require(level: str = "strict", mode: str | None = None) -> Isolation:
    """The isolation candidates will get, or a HoneError when `level` is "strict" and it is not full.

    Call it before grading model-written code. "weak" accepts whatever this machine can do (the verdicts say
    what that was); "strict" refuses to run the code at all rather than run it with a layer missing.
    """
    if level not in LEVELS:
        raise HoneError(f"sandbox level {level!r}: use strict or weak")
    iso = isolation(mode)
    if level == "strict" and not iso.full:
        raise HoneError(f"refusing to run model-written code: the sandbox cannot isolate it here "
                        f"({'; '.join(iso.missing())}); run Hone as root with bubblewrap (`bwrap`) where it can "
                        f"create namespaces (e.g. in a container), or accept {iso.describe()!r} with --sandbox weak "
                        f"(config: `sandbox: weak`)")
    return iso


def _without_namespaces(root: bool, why: str) -> Isolation:
    """No bwrap view: a separate uid is only possible when it can reach the interpreter."""
    note = why + _UNWRAPPED
    if root and blocked_ancestors(_python_paths()):
        return Isolation(drop_uid=False, wrap=(), notes=(
            note, "the Python interpreter is not reachable by other users, so candidates run as root"))
    return Isolation(drop_uid=root, wrap=(), notes=(note,))


def _harness_program() -> str:
    """harness.py compiled once per process into the private root (readable by candidates: it holds no secret),
    so the two interpreters of every run load bytecode instead of compiling the source again."""
    global _compiled
    root = _private_root()
    with _lock:
        if _compiled is None or not os.path.exists(_compiled):
            target = os.path.join(root, "harness.pyc")
            py_compile.compile(str(_HARNESS), cfile=target, doraise=True)
            os.chmod(target, 0o644)
            _compiled = target
        return _compiled


def _private_root() -> str:
    """A per-process parent for candidate dirs: traversable, not listable, not writable by candidates."""
    global _root
    with _lock:
        if _root is None or not os.path.isdir(_root):
            _root = tempfile.mkdtemp(prefix="hone-sandbox-")
            os.chmod(_root, 0o711)
            atexit.register(shutil.rmtree, _root, ignore_errors=True)
        return _root


def _site_paths() -> list[str]:
    paths = [*site.getsitepackages()]
    return [p for p in paths if os.path.isdir(p)]


def clean_env(workdir: str) -> dict[str, str]:
    """The whole environment a candidate gets: nothing inherited, so no API key can leak."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir,
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _remove(path: str) -> None:
    def make_writable(func, p, _exc):
        try:
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=make_writable)


def require_for(tasks, level: str = "strict") -> Isolation | None:
    """`require(level)` when any of `tasks` is a code task (the only kind whose grading runs model-written code)."""
    return require(level) if any(t.kind == "code" for t in tasks) else None


def run_tests(source: str, tests: str, *, style: str, entry_point: str | None = None, prompt: str | None = None,
              limits: Limits = Limits(), guard: bool = True, mode: str | None = None,
              sandbox: str = "strict") -> dict:
    """Run `source` against `tests` in the sandbox and return the checker's result.

    style "humaneval": `tests` defines `check(candidate)`, called with `entry_point`; `prompt` (the task's own
    code, e.g. helper functions the tests use) runs in the checker first. style "asserts": `tests` is plain
    code calling the candidate's functions by name. The result has outcome pass/fail/timeout/error, a reason,
    stdout/stderr tails, seconds, the isolation used and the `sandbox` level asked for (see `require`: "strict"
    raises HoneError instead of running the code where isolation is not full).
    """
    result = _run(require(sandbox, mode), source, tests, style=style, entry_point=entry_point, prompt=prompt,
                  limits=limits, guard=guard)
    result["sandbox"] = sandbox
    return result


def _run(iso: Isolation, source: str, tests: str, *, style: str, entry_point: str | None, prompt: str | None,
         limits: Limits, guard: bool) -> dict:
    uid = random.randint(*_UID_RANGE) if iso.drop_uid else None
    nonce = secrets.token_hex(16)
    python = os.path.realpath(sys.executable)  # a venv's symlinks may lead through folders the view leaves out
    if iso.wrap:
        host_dir, workdir, harness = None, WORKDIR, HARNESS_IN_VIEW
        argv = [*iso.wrap, "--size", str(limits.disk_mb << 20), "--perms", "0700", "--tmpfs", WORKDIR,
                "--ro-bind", _harness_program(), HARNESS_IN_VIEW, "--chdir", WORKDIR, "--"]
    else:
        host_dir = workdir = tempfile.mkdtemp(prefix="run-", dir=_private_root())
        harness, argv = _harness_program(), []
    argv += [python, "-I", "-S", harness, "check"]
    job = {"source": source, "tests": tests, "style": style, "entry_point": entry_point, "prompt": prompt,
           "limits": limits.as_job(), "guard": guard, "uid": uid, "nonce": nonce, "env": clean_env(workdir),
           "site_paths": [os.path.realpath(p) for p in _site_paths()], "harness": harness, "python": python}
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=host_dir or "/", env=clean_env(workdir), start_new_session=True)
        try:
            out, err = proc.communicate(json.dumps(job).encode(), timeout=limits.timeout_s + 5)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)  # not reaped yet, so the group id cannot have been reused
            out, err = proc.communicate()
            timed_out = True
        result = _read_result(out, nonce)
        if result is None:
            if timed_out:
                result = {"outcome": "timeout", "reason": f"the sandbox ran past {limits.timeout_s} s and was killed"}
            else:
                result = {"outcome": "error", "reason": f"the sandbox's checker gave no result (exit {proc.returncode}): "
                                                        f"{err.decode(errors='replace').strip()[-300:]}"}
    finally:
        if host_dir:
            _remove(host_dir)
    result["seconds"] = round(time.perf_counter() - t0, 4)
    result["isolation"] = iso.describe()
    if iso.notes:
        result["isolation_notes"] = list(iso.notes)
    if uid is not None:
        result["uid"] = uid
    for key in ("reason", "stdout_tail", "stderr_tail"):
        if key in result:
            result[key] = strip_secrets(str(result[key]))
    return result


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, 9)
    except OSError:
        pass


def _read_result(out: bytes, nonce: str) -> dict | None:
    """The checker's last stdout line, if it carries this run's nonce."""
    for line in reversed(out.decode("utf-8", "replace").splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.pop("nonce", None) == nonce:
            return obj
    return None
