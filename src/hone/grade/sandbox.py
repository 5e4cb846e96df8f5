"""Run candidate code with its task's tests in a separate, limited process tree, and read back one result.

Layers, outermost first (docs/sandbox.md says what each does and does not protect against):
* a new session (process group) killed as a whole at the wall-clock limit;
* `unshare`: network, PID and mount namespaces (no network; the tree dies with its first process; a private
  /proc), where the machine allows it: as root, or through a user namespace;
* as root, the candidate runs under a fresh unprivileged uid, in its own temp dir (the only place it can write),
  which also makes RLIMIT_NPROC a real cap on forks; world-writable dirs are hidden and the interpreter it needs
  is shown read-only, wherever it is installed (under /tmp, a 0700 home, behind a symlink);
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
_NS_FLAGS = ["--net", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc"]
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
    disk_mb: int = 64  # the candidate's directory, where the machine allows a private tmpfs for it
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
    unshare: tuple[str, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    expose: tuple[tuple[str, str | None], ...] = ()  # see harness._reshape_filesystem

    @property
    def network_isolated(self) -> bool:
        return "--net" in self.unshare

    @property
    def full(self) -> bool:
        """Every layer: separate uid, network/pid/mount namespaces (and so the private mounts)."""
        return self.drop_uid and self.network_isolated

    def missing(self) -> list[str]:
        """What stops this setup from being full isolation, in words a user can act on."""
        why = []
        if not self.network_isolated:
            why.append(next((n.split(": the network")[0] for n in self.notes if "NOT isolated" in n),
                            "no network, pid and mount namespaces"))
        if not self.drop_uid:
            why.append("candidates would run under the grader's own uid ("
                       + ("the interpreter is not reachable by other users" if os.geteuid() == 0 else
                          "a separate uid needs Hone to run as root") + ")")
        return why

    def describe(self) -> str:
        parts = ["separate uid" if self.drop_uid else "same uid as the grader"]
        parts.append("network, pid and mount namespaces" if self.unshare else "NO namespaces (network reachable)")
        return ", ".join(parts) + "; rlimits; Python guard"


def _probe(argv: list[str]) -> str | None:
    """None when `argv` runs and exits 0, else the reason it does not (a slow start is given a second, longer try)."""
    for timeout in (10, 60):
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            why = str(e)
            continue
        except OSError as e:
            return str(e)
        return None if done.returncode == 0 else (done.stderr.decode(errors="replace").strip()
                                                  or f"exit {done.returncode}")
    return why


def _python_paths() -> list[str]:
    """Real paths of everything the sandbox's interpreters load: binary, prefixes, stdlib, libpython, site dirs."""
    import sysconfig

    paths = [sys.executable, sys.prefix, sys.base_prefix, *_site_paths()]
    paths += [sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")]
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and os.path.isdir(libdir):
        paths.append(libdir)
    return sorted({os.path.realpath(p) for p in paths})


def _outermost(paths: list[str]) -> list[str]:
    """`paths` without those inside another of them."""
    out: list[str] = []
    for p in sorted(set(paths), key=len):
        if not any(p == o or p.startswith(o.rstrip(os.sep) + os.sep) for o in out):
            out.append(p)
    return out


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


_SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/dev/mqueue")


def writable_covers(keep: list[str]) -> tuple[tuple[str, str | None], ...]:
    """(dir, entry) pairs that hide every world-writable dir behind an empty tmpfs and show only the paths in
    `keep` inside it: each dir on the way down is covered too, keeping just the next step, so a venv under
    /tmp/clone is shown without the rest of /tmp/clone."""
    found: set[tuple[str, str | None]] = set()
    kept = _outermost([os.path.realpath(k) for k in keep])
    for d in _SHARED_WRITABLE:
        real = os.path.realpath(d)
        try:
            if not (os.path.isdir(real) and os.stat(real).st_mode & 0o002):
                continue
        except OSError:
            continue
        found.add((real, None))
        for path in kept:
            rel = os.path.relpath(path, real)
            if rel == "." or rel.startswith(".."):
                continue
            parts = rel.split(os.sep)
            for i, part in enumerate(parts):
                found.add((os.path.join(real, *parts[:i]), part))
    return tuple(sorted(found, key=lambda pair: (pair[0], pair[1] or "")))


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
        return _without_namespaces(root, "namespaces turned off (HONE_SANDBOX=none): the network is NOT isolated")
    exe = shutil.which("unshare")
    if not exe:
        return _without_namespaces(root, "no `unshare` binary: the network is NOT isolated")
    flags = _NS_FLAGS if root else ["--user", "--map-root-user", *_NS_FLAGS]
    why = _probe([exe, *flags, "true"])
    if why is None:
        paths = _python_paths()
        expose = (*blocked_ancestors(paths), *writable_covers(paths)) if root else ()
        full = Isolation(drop_uid=root, unshare=(exe, *flags), expose=expose)
        why = _self_test(full)
        if why is None:
            return full
    return _without_namespaces(root, f"`unshare {' '.join(flags)}` failed ({why[:200]}): the network is NOT isolated")


def _self_test(iso: Isolation) -> str | None:
    """Grade one correct answer with this setup (mounts or uid changes can fail where `unshare` works).

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
                        f"({'; '.join(iso.missing())}); run Hone as root where `unshare` works (e.g. in a "
                        f"container), or accept {iso.describe()!r} with --sandbox weak (config: `sandbox: weak`)")
    return iso


def _without_namespaces(root: bool, note: str) -> Isolation:
    """No mount namespace: a separate uid is only possible when it can reach the interpreter."""
    if root and blocked_ancestors(_python_paths()):
        return Isolation(drop_uid=False, unshare=(), notes=(
            note, "the Python interpreter is not reachable by other users, so candidates run as root"))
    return Isolation(drop_uid=root, unshare=(), notes=(note,))


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
    workdir = tempfile.mkdtemp(prefix="run-", dir=_private_root())
    uid = random.randint(*_UID_RANGE) if iso.drop_uid else None
    if uid is not None:
        os.chown(workdir, uid, uid)
    nonce = secrets.token_hex(16)
    job = {"source": source, "tests": tests, "style": style, "entry_point": entry_point, "prompt": prompt,
           "limits": limits.as_job(), "guard": guard, "uid": uid, "nonce": nonce, "env": clean_env(workdir),
           "site_paths": [os.path.realpath(p) for p in _site_paths()], "harness": _harness_program(),
           "python": os.path.realpath(sys.executable),
           "expose": [*iso.expose, *writable_covers([_private_root()])] if iso.drop_uid and iso.unshare else []}
    argv = [*iso.unshare, sys.executable, "-I", "-S", _harness_program(), "check"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=workdir, env=clean_env(workdir), start_new_session=True)
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
        _remove(workdir)
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
