"""The program that runs inside the sandbox. Standard library only: it runs as `python -I -S harness.pyc ROLE`.

Two processes, two roles, so that the verdict never depends on anything the candidate's code can reach:

* `check` (the checker, trusted): reads the job (candidate code, task tests) as JSON on stdin, starts the
  candidate server, runs the task's tests with the candidate's functions replaced by proxies, and prints one
  result line (carrying the grader's nonce) on its stdout, which the candidate never holds.
* `serve` (the candidate server, untrusted): a fresh interpreter, under its own uid where the machine allows it,
  with stdin closed, stdout/stderr in files, resource limits and a Python audit-hook guard. It executes the
  candidate's code and answers calls `name(*args)` over a pipe.

Only plain built-in values cross the pipe (None, bool, int, float, complex, str, bytes, list, tuple, dict, set,
frozenset; exact types, no subclasses), so an object whose `__eq__` always returns True, or an `int` subclass
with a forged comparison, cannot reach the tests: the checker compares values it decoded itself. A candidate
that exits early (`sys.exit(0)` before the tests) simply stops answering: the tests fail.
"""

import builtins
import os
import sys
import time

MAX_LINE = 64 * 1024 * 1024
TAIL = 2000


# ----------------------------------------------------------------------------------------------- wire format
def _json_codec():
    """(dumps, loads) on CPython's C JSON scanner/encoder directly: importing the `json` package pulls in `re`
    and `enum`, which would double the start-up time of both sandbox interpreters. Falls back to `json`."""
    try:
        import _json

        class Context:
            strict = True
            object_hook = object_pairs_hook = None
            parse_float, parse_int, parse_constant = float, int, float
            memo = {}

        scan = _json.make_scanner(Context())

        def refuse(value):
            raise TypeError(f"not JSON: {type(value).__name__}")

        encoder = _json.make_encoder(None, refuse, _json.encode_basestring_ascii, None, ":", ",", False, False, True)
    except (ImportError, AttributeError, TypeError):
        import json

        return json.dumps, json.loads

    def dumps(value):
        return "".join(encoder(value, 0))

    def loads(text):
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        text = text.strip()
        try:
            value, end = scan(text, 0)
        except StopIteration:
            raise ValueError("not valid JSON") from None
        if end != len(text):
            raise ValueError("extra data after JSON value")
        return value

    return dumps, loads


dumps, loads = _json_codec()


def encode(value, depth=0):
    """A JSON-able form of a built-in value; anything else raises TypeError (it cannot be compared safely)."""
    if depth > 200:
        raise TypeError("value nested too deeply to cross the sandbox boundary")
    t = type(value)
    if value is None or t is bool or t is int or t is str:
        return value
    if t is float:
        return {"f": repr(value)} if value != value or value in (float("inf"), float("-inf")) else value
    if t is list:
        return [encode(v, depth + 1) for v in value]
    if t is tuple:
        return {"t": [encode(v, depth + 1) for v in value]}
    if t is dict:
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if t is set:
        return {"s": [encode(v, depth + 1) for v in value]}
    if t is frozenset:
        return {"fs": [encode(v, depth + 1) for v in value]}
    if t is bytes:
        return {"b": value.hex()}
    if t is complex:
        return {"c": [repr(value.real), repr(value.imag)]}
    raise TypeError(f"a value of type {t.__name__} cannot cross the sandbox boundary (only built-in types can)")


def decode(obj):
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    (tag, body), = obj.items()
    if tag == "f":
        return float(body)
    if tag == "t":
        return tuple(decode(v) for v in body)
    if tag == "d":
        return {decode(k): decode(v) for k, v in body}
    if tag == "s":
        return {decode(v) for v in body}
    if tag == "fs":
        return frozenset(decode(v) for v in body)
    if tag == "b":
        return bytes.fromhex(body)
    if tag == "c":
        return complex(float(body[0]), float(body[1]))
    raise ValueError(f"unknown wire tag {tag!r}")


def _send(stream, obj):
    stream.write(dumps(obj).encode() + b"\n")
    stream.flush()


# ------------------------------------------------------------------------------------------ candidate guard
_DENIED_EVENTS = frozenset({
    "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty", "subprocess.Popen",
    "os.kill", "os.killpg", "signal.pthread_kill", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    "sys.addaudithook", "os.setuid", "os.setgid",
})
_DENIED_IMPORTS = frozenset({"_posixsubprocess", "_ctypes", "ctypes"})
_PATH_EVENTS = frozenset({
    "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link", "os.truncate",
    "os.utime", "os.chflags", "os.setxattr", "os.removexattr", "os.mkfifo", "os.mknod", "shutil.rmtree",
    "shutil.copyfile", "shutil.copymode", "shutil.copystat", "shutil.move", "shutil.chown",
})


def install_guard(root):
    """A Python audit hook: no processes, signals, sockets, ctypes or writes outside `root`.

    A tripwire that gives a clear failure reason, not the wall: the walls are the uid, the namespaces and the
    resource limits set up around this process (see docs/sandbox.md). Its state is closed over, immutable.
    """
    realpath = os.path.realpath
    fspath = os.fsdecode
    root = realpath(root)
    prefix = root + os.sep
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    try:
        own_proc = "/proc/" + os.readlink("/proc/self")
    except OSError:
        own_proc = "/proc/self"

    def inside(path):
        if isinstance(path, int):
            return True  # an already-open descriptor
        try:
            p = realpath(fspath(path))
        except (TypeError, ValueError):
            return False
        return p == root or p.startswith(prefix)

    def deny(event):
        raise PermissionError(f"blocked by the sandbox: {event}")

    def hook(event, args):
        if event in _DENIED_EVENTS or event.startswith(("socket.", "ctypes.")):
            deny(event)
        if event == "open":
            path, mode, flags = args
            if isinstance(path, (str, bytes)):
                p = realpath(fspath(path))
                if p.startswith("/proc/") and p[6:7].isdigit() and not (p == own_proc or p.startswith(own_proc + "/")):
                    deny(f"reading another process's {p}")
            writing = bool((flags or 0) & write_flags) or any(c in (mode or "") for c in "wax+")
            if writing and not inside(path):
                deny(f"writing {path!r} outside the sandbox directory")
        elif event in _PATH_EVENTS:
            for arg in args:
                if isinstance(arg, (str, bytes)) or hasattr(arg, "__fspath__"):
                    if not inside(arg):
                        deny(f"{event} on {arg!r} outside the sandbox directory")
        elif event == "os.symlink":
            if not inside(args[1]):
                deny(f"os.symlink at {args[1]!r} outside the sandbox directory")
        elif event == "import" and args[0] in _DENIED_IMPORTS:
            deny(f"import {args[0]}")
        elif event == "object.__setattr__" and args[1] in ("__code__", "__globals__", "__closure__"):
            deny(f"setting {args[1]}")

    sys.addaudithook(hook)


# ------------------------------------------------------------------------------------------ candidate side
def _candidate_line(tb):
    """The last line number inside the candidate's own code in a traceback, or None."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<candidate>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _describe(exc):
    try:
        message = str(exc)[:500]
    except BaseException:  # noqa: B036 - a hostile __str__ must not break the server
        message = "<unprintable>"
    return {"raised": type(exc).__name__, "message": message, "line": _candidate_line(exc.__traceback__)}


def serve(req_fd, resp_fd):
    requests = os.fdopen(req_fd, "rb")
    responses = os.fdopen(resp_fd, "wb")
    job = loads(requests.readline(MAX_LINE))
    sys.path.extend(job.get("site_paths", []))
    if job.get("guard", True):
        install_guard(os.getcwd())
    namespace = {"__name__": "__candidate__", "__builtins__": builtins}
    try:
        exec(compile(job["source"], "<candidate>", "exec"), namespace)
    except BaseException as e:  # noqa: B036 - SystemExit at import time is an answer too: it did not load
        _send(responses, {"load_error": _describe(e)})
        return
    functions, modules = [], {}
    for name, value in list(namespace.items()):
        if name.startswith("__"):
            continue
        if type(value) is type(sys):
            modules[name] = getattr(value, "__name__", name)
        elif callable(value):
            functions.append(name)
    _send(responses, {"loaded": True, "functions": functions, "modules": modules})
    while True:
        line = requests.readline(MAX_LINE)
        if not line:
            return
        request = loads(line)
        try:
            fn = namespace[request["name"]]
            result = fn(*decode(request["args"]), **decode(request["kwargs"]))
            reply = {"value": encode(result)}
        except BaseException as e:  # noqa: B036 - SystemExit / KeyboardInterrupt inside a call are failures
            reply = _describe(e)
        _send(responses, reply)


# -------------------------------------------------------------------------------------------- checker side
# MBPP-style asserts may use a module the candidate imported (`math.isclose(...)`), as they would in one shared
# namespace. The checker imports those itself, from this list only (the names come from the candidate).
_TEST_MODULES = frozenset({
    "array", "base64", "binascii", "bisect", "calendar", "cmath", "collections", "copy", "dataclasses", "datetime",
    "decimal", "difflib", "enum", "fractions", "functools", "hashlib", "heapq", "itertools", "json", "math",
    "numbers", "operator", "os", "queue", "random", "re", "statistics", "string", "struct", "sys", "textwrap",
    "time", "typing", "unicodedata", "zlib",
})
class CandidateGone(BaseException):
    """The candidate's process stopped answering (exited, crashed, was killed). Not catchable by `except Exception`."""


class CandidateTimeout(BaseException):
    """The wall-clock budget ran out while waiting for the candidate."""


class MarshalError(BaseException):
    """The tests passed the candidate something the sandbox cannot send (a harness limit, not a wrong answer)."""


class CandidateError(RuntimeError):
    """The candidate raised an exception that is not a built-in type; the tests see this instead."""


def _rebuild_exception(reply):
    name, line = str(reply.get("raised", "Exception")), reply.get("line")
    message = f"{str(reply.get('message', ''))[:500]} (raised by the candidate" + (f" at line {line})" if line else ")")
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == "builtins":
        try:
            return cls(message)
        except Exception:  # noqa: BLE001 - some built-in exceptions need special arguments
            pass
    return CandidateError(f"{name}: {message}")


class Channel:
    """Request/response lines to the candidate server with a shared wall-clock deadline."""

    def __init__(self, proc, req, resp_fd, deadline):
        self.proc = proc
        self.req = req
        self.resp_fd = resp_fd
        self.deadline = deadline
        self.buffer = b""
        self.calls = 0

    def receive(self):
        import select

        while b"\n" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise CandidateTimeout()
            ready, _, _ = select.select([self.resp_fd], [], [], left)
            if not ready:
                raise CandidateTimeout()
            chunk = os.read(self.resp_fd, 1 << 20)
            if not chunk:
                raise CandidateGone()
            self.buffer += chunk
            if len(self.buffer) > MAX_LINE:
                raise CandidateGone()
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            reply = loads(line)
        except ValueError:
            raise CandidateGone() from None
        if not isinstance(reply, dict):
            raise CandidateGone()
        return reply

    def send(self, obj):
        try:
            _send(self.req, obj)
        except (BrokenPipeError, OSError):
            raise CandidateGone() from None

    def call(self, name, args, kwargs):
        try:
            payload = {"name": name, "args": encode(list(args)), "kwargs": encode(dict(kwargs))}
        except TypeError as e:
            raise MarshalError(str(e)) from None
        self.calls += 1
        self.send(payload)
        reply = self.receive()
        if "value" in reply:
            try:
                return decode(reply["value"])
            except (ValueError, TypeError, KeyError):
                raise CandidateGone() from None
        raise _rebuild_exception(reply)


def _proxy(channel, name):
    def candidate(*args, **kwargs):
        return channel.call(name, args, kwargs)

    candidate.__name__ = candidate.__qualname__ = name
    return candidate


def _failed_line(tb, sources):
    """`<file> line N: <text>` of the innermost frame in the task's tests (or prompt)."""
    found = None
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name in sources:
            found = (name, tb.tb_lineno)
        tb = tb.tb_next
    if not found:
        return ""
    name, line = found
    lines = sources[name].splitlines()
    text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    return f"{name[1:-1]} line {line}: {text}"


def _spawn_candidate(job, req_r, resp_w, out_fd, err_fd):
    """fork + exec the candidate server: own session, stdin closed, limits, unprivileged uid; no other fds.

    Plain os.fork/execve (the checker is single-threaded): importing `subprocess` would cost more start-up
    time than the rest of the checker.
    """
    import resource

    limits, uid = job["limits"], job.get("uid")
    python = job.get("python") or sys.executable  # the real path: a venv's symlinks may lead through hidden dirs
    argv = [python, "-I", "-S", "-u", job["harness"], "serve", "3", "4"]
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        for src, dst in ((null, 0), (out_fd, 1), (err_fd, 2), (req_r, 5), (resp_w, 6)):
            os.dup2(src, dst)
        os.dup2(5, 3)
        os.dup2(6, 4)
        os.closerange(5, 1 << 16)
        cpu = int(limits["cpu_s"])
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits["memory_mb"] << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_mb"] << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"],) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits["nofile"],) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        os.execve(python, argv, job["env"])
    except BaseException as e:  # noqa: B036 - report and leave; never fall through into the checker's code
        os.write(2, f"sandbox: cannot start the candidate: {e}\n".encode())
    finally:
        os._exit(127)


class Candidate:
    """The candidate server's process, as the checker sees it."""

    def __init__(self, pid):
        self.pid = pid
        self.status = None

    def poll(self, wait=0.0):
        """Exit code (negative: killed by that signal), or None while it runs."""
        end = time.monotonic() + wait
        while self.status is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.status = os.waitstatus_to_exitcode(status)
            elif time.monotonic() >= end:
                break
            else:
                time.sleep(0.01)
        return self.status

    def kill(self):
        # The process itself too: right after fork it has not called setsid yet, so its group does not exist,
        # and waiting for it would hang until the grader's outer timeout.
        for kill in (os.killpg, os.kill):
            try:
                kill(self.pid, 9)
            except OSError:
                pass
        if self.status is None:
            _, status = os.waitpid(self.pid, 0)
            self.status = os.waitstatus_to_exitcode(status)


def _kill_uid(uid):
    """Kill every process left under the candidate's uid, including any that left its process group."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, 9)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _tail(path):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - TAIL))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def check(job):
    limits = job["limits"]
    workdir = os.getcwd()
    deadline = time.monotonic() + limits["timeout_s"]
    uid = job.get("uid")
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    out_path, err_path = os.path.join(workdir, ".stdout"), os.path.join(workdir, ".stderr")
    out_fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err_fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    if uid is not None:  # the candidate's folder and output files become its own; nothing else is
        for fd in (out_fd, err_fd):
            os.fchown(fd, uid, uid)
        os.chown(workdir, uid, uid)
    proc = Candidate(_spawn_candidate(job, req_r, resp_w, out_fd, err_fd))
    for fd in (req_r, resp_w, out_fd, err_fd):
        os.close(fd)
    channel = Channel(proc, os.fdopen(req_w, "wb"), resp_r, deadline)
    sources = {"<tests>": job["tests"], "<prompt>": job.get("prompt") or ""}
    result = {"outcome": "pass", "reason": "all tests passed"}
    try:
        channel.send({"source": job["source"], "guard": job.get("guard", True),
                      "site_paths": job.get("site_paths", [])})
        hello = channel.receive()
        if isinstance(hello.get("load_error"), dict):
            e = hello["load_error"]
            where = f" at line {e['line']}" if e.get("line") else ""
            result = {"outcome": "fail", "reason": f"the candidate does not load: {str(e.get('raised'))}{where}: "
                                                   f"{str(e.get('message'))[:500]}"}
        else:
            # Names the candidate may lend the tests: its own functions, never a builtin (a candidate-defined
            # `set` or `sorted` used on both sides of an assert would make it compare with itself).
            functions = [f for f in hello.get("functions") or [] if isinstance(f, str) and f.isidentifier()
                         and not f.startswith("__") and not hasattr(builtins, f)]
            namespace = {"__name__": "__hone_tests__"}
            if job["style"] == "humaneval":
                if job.get("prompt"):
                    exec(compile(job["prompt"], "<prompt>", "exec"), namespace)
                exec(compile(job["tests"], "<tests>", "exec"), namespace)
                if job["entry_point"] not in functions:
                    raise NameError(f"the candidate defines no function {job['entry_point']!r}")
                # The prompt's helpers stay trusted; its entry point is the candidate's, wherever tests use it.
                candidate = namespace[job["entry_point"]] = _proxy(channel, job["entry_point"])
                namespace["check"](candidate)
            else:
                import importlib

                for alias, module in dict(hello.get("modules") or {}).items():
                    if str(module).split(".")[0] in _TEST_MODULES:
                        namespace[str(alias)] = importlib.import_module(str(module))
                for name in functions:
                    namespace[name] = _proxy(channel, name)
                exec(compile(job["tests"], "<tests>", "exec"), namespace)
    except CandidateTimeout:
        result = {"outcome": "timeout", "reason": f"no answer within {limits['timeout_s']} s"}
    except CandidateGone:
        code = proc.poll(wait=0.5)
        how = "stopped answering" if code is None else (
            f"was killed by signal {-code}" if code < 0 else f"exited with code {code}")
        result = {"outcome": "fail", "reason": f"the candidate's process {how} before the tests finished"}
    except MarshalError as e:
        result = {"outcome": "error", "reason": f"the tests pass a value the sandbox cannot send: {e}"}
    except AssertionError as e:
        detail = f" ({e})" if str(e) else ""
        result = {"outcome": "fail",
                  "reason": f"assertion failed at {_failed_line(e.__traceback__, sources)}{detail}"}
    except Exception as e:  # noqa: BLE001 - any other exception raised through the tests is a failed test
        where = _failed_line(e.__traceback__, sources)
        result = {"outcome": "fail", "reason": f"{type(e).__name__}: {str(e)[:500]}" + (f" at {where}" if where else "")}
    finally:
        proc.kill()
        if uid is not None:
            _kill_uid(uid)
    result["calls"] = channel.calls
    result["stdout_tail"] = _tail(out_path)
    result["stderr_tail"] = _tail(err_path)
    result["nonce"] = job["nonce"]
    sys.stdout.write(dumps(result) + "\n")
    sys.stdout.flush()


def main(argv):
    if argv[:1] == ["serve"]:
        serve(int(argv[1]), int(argv[2]))
        return
    import resource

    job = loads(sys.stdin.read())
    sys.stdin.close()
    own = job["limits"]
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (int(own["cpu_s"]) + 5,) * 2)
    check(job)


if __name__ == "__main__":
    main(sys.argv[1:])
