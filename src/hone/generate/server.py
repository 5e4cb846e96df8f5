"""The `server` engine: Hone starts an OpenAI-compatible server for one model, generates through it, stops it.

This is how vLLM (or SGLang, or `transformers serve`) runs when it lives in its own environment: vLLM pins
transformers versions Hone may not share. The server runs in its own session (process group); Hone stops the
whole group when the engine is closed, when the stage fails or is interrupted (SIGINT, SIGTERM), and the kernel
signals it if Hone itself is killed. Its output goes to a log file next to the stage's outputs.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import shlex
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hone.errors import HoneError
from hone import procgroup
from hone.generate.openai_compat import OpenAIGenerator

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def server_args(command: str, model: str, port: int, config: Any) -> list[str]:
    """`command` with its placeholders filled (each value shell-quoted), split into argv."""
    values = {"model": model, "host": HOST, "port": port, "seed": config.seed, "dtype": config.dtype or "auto",
              "tensor_parallel_size": config.tensor_parallel_size, "data_parallel_size": config.data_parallel_size,
              "gpu_memory_utilization": config.gpu_memory_utilization}
    try:
        text = command.format(**{k: shlex.quote(str(v)) for k, v in values.items()})
    except (KeyError, IndexError, ValueError) as e:
        raise HoneError(f"generate.server_command: bad placeholder {e} (known: "
                        f"{', '.join('{' + k + '}' for k in values)})") from None
    args = shlex.split(text)
    if not args:
        raise HoneError("generate.server_command is empty")
    return args


class Server:
    """One server process group: start, wait until `/v1/models` answers, stop."""

    def __init__(self, args: list[str], log_path: Path):
        self.args, self.log_path = args, log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")
        self._log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(args)}\n".encode())
        self._log.flush()
        try:
            self.proc = procgroup.start(args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        except OSError as e:
            self._log.close()
            raise HoneError(f"generate.server_command: cannot start {args[0]!r} ({e.strerror or e})") from None
        self._signals = contextlib.ExitStack()
        self._signals.enter_context(procgroup.sigterm_unwinds())
        atexit.register(self.stop)

    def _tail(self) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1][:300] if lines else ""

    def wait_ready(self, base_url: str, timeout: float) -> list[str]:
        """The model ids the server lists once `/v1/models` answers; an error if it exits or times out."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self.stop()
                raise HoneError(f"the generation server exited with code {code} before answering /v1/models "
                                f"({self._tail()}); log: {self.log_path}")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=5) as resp:
                    data = json.loads(resp.read())
                return [str(m.get("id")) for m in data.get("data") or []]
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise HoneError(f"the generation server did not answer {base_url}/models within {timeout:.0f} s; "
                                f"log: {self.log_path}")
            time.sleep(0.25)

    def stop(self) -> None:
        """SIGTERM to the whole process group, SIGKILL to whatever is left after a grace period."""
        atexit.unregister(self.stop)
        procgroup.stop(self.proc)
        if not self._log.closed:
            self._log.close()
        self._signals.close()


class ServerGenerator(OpenAIGenerator):
    """The OpenAI-compatible backend, plus ownership of the server it talks to."""

    def __init__(self, server: Server, served_model: str, base_url: str, model: str, config: Any):
        super().__init__(served_model, base_url, concurrency=config.concurrency, timeout=config.request_timeout,
                         name=model)
        self.server = server

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.server.stop()


def open_engine(config: Any, model: str, log_path: Path | None = None) -> ServerGenerator:
    """Start `config.server_command` for `model`, wait until it lists a model, and generate through it."""
    port = config.port or free_port()
    server = Server(server_args(config.server_command, model, port, config),
                    log_path or Path(model).with_name(Path(model).name + ".server.log"))
    base_url = f"http://{HOST}:{port}/v1"
    try:
        ids = server.wait_ready(base_url, config.startup_timeout)
        if not ids:
            raise HoneError(f"the generation server at {base_url} lists no model; log: {server.log_path}")
        served = next((i for i in ids if i == model or Path(i).name == Path(model).name), ids[0])
        return ServerGenerator(server, served, base_url, model, config)
    except BaseException:
        server.stop()
        raise
