"""The `server` engine: Hone starts an OpenAI-compatible server for one model, generates through it, stops it.

This is how vLLM (or SGLang, or `transformers serve`) runs when it lives in its own environment: vLLM pins
transformers versions Hone may not share. By default (`server_prompt: token_ids`) the server gets what the
in-process engines get: the token ids of Hone's own rendering of the prompt, on `/v1/completions`; where it
returns the answer's token ids (vLLM does, asked with `return_token_ids`), Hone cuts and decodes them itself.
So its answers are the hf engine's, not those of a second chat template or detokenizer (vLLM's leaves out a
trailing incomplete UTF-8 character that HF decodes as U+FFFD). A server that reports the prompt ids it used is
checked against what was sent.

The server runs in its own session (process group); Hone stops the whole group when the engine is closed, when
the stage fails or is interrupted (SIGINT, SIGTERM), and the kernel signals it if Hone itself is killed. Its
output goes to a log file next to the stage's outputs.
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
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Iterator, Sequence

from hone.chat import decode_answer, stop_token_ids
from hone.errors import HoneError
from hone import procgroup
from hone.generate.base import GenParams, Progress, Request
from hone.generate.fit import fit_prompts
from hone.generate.openai_compat import OpenAIGenerator
from hone.records import Generation

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def server_args(command: str, model: str, port: int, config: Any) -> list[str]:
    """`command` with its placeholders filled (each value shell-quoted), split into argv."""
    from hone.generate.registry import engine_dtype

    values = {"model": model, "host": HOST, "port": port, "seed": config.seed, "dtype": engine_dtype(config),
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
    """The OpenAI-compatible backend, plus ownership of the server it talks to. With a tokenizer, prompts go as
    Hone's token ids to `/v1/completions`; without one (`server_prompt: messages`), as chat messages."""

    def __init__(self, server: Server, served_model: str, base_url: str, model: str, config: Any,
                 tokenizer: Any = None):
        super().__init__(served_model, base_url, concurrency=config.concurrency, timeout=config.request_timeout,
                         name=model)
        self.server, self.tokenizer = server, tokenizer
        # requests whose prompt ids, as the server reports them, were the ids sent ("same") or not ("other")
        self.prompt_ids_reported: Counter[str] = Counter()

    def _complete(self, ids: list[int], req: Request, params: GenParams, stops: list[int]) -> tuple[Any, float]:
        """One `/v1/completions` call on token ids (runs in a worker thread: no tokenizer here)."""
        t0 = time.perf_counter()
        kwargs: dict[str, Any] = dict(model=self.model, prompt=ids, max_tokens=params.max_new_tokens,
                                      temperature=params.temperature, top_p=params.top_p,
                                      extra_body={"return_token_ids": True, "stop_token_ids": stops})
        if not params.greedy:
            kwargs["seed"] = params.seed * 100003 + req.sample
        try:
            return self.client.completions.create(**kwargs), time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001 - every failure becomes an explicit error record
            return e, time.perf_counter() - t0

    def _record(self, req: Request, ids: list[int], params: GenParams, resp: Any, seconds: float) -> Generation:
        def record(output: str, finish: str, tokens: int = 0, retryable: bool = False) -> Generation:
            return Generation(id=req.id, sample=req.sample, model=self.name, output=output, finish_reason=finish,
                              retryable=retryable, tokens=tokens, seconds=round(seconds, 4),
                              params=params.model_dump(exclude={"batch_size"}))

        if isinstance(resp, Exception):
            return record(f"{type(resp).__name__}: {str(resp)[:300]}", "error", retryable=True)
        choice = resp.choices[0]
        extra = choice.model_extra or {}
        used = extra.get("prompt_token_ids")
        if used is not None:
            self.prompt_ids_reported["same" if list(used) == ids else "other"] += 1
            if list(used) != ids:
                return record(f"the server generated from other prompt token ids than Hone sent ({len(used)} vs "
                              f"{len(ids)} tokens)", "error")
        token_ids = extra.get("token_ids")
        if token_ids is None:  # a server that takes token ids but returns only text: its detokenizer's text
            tokens = resp.usage.completion_tokens if resp.usage else 0
            return record((choice.text or "").strip(), "length" if choice.finish_reason == "length" else "stop",
                          tokens)
        answer = decode_answer(self.tokenizer, token_ids)  # as the hf engine decodes its own ids
        if answer.stopped or choice.finish_reason != "stop":
            return record(answer.text, "stop" if answer.stopped else "length", answer.tokens)
        return record(answer.text, "stop", answer.tokens + 1)  # the server left its stop token out

    def generate(self, requests: Sequence[Request], params: GenParams,
                 progress: Progress | None = None) -> Iterator[Generation]:
        if self.tokenizer is None:
            yield from super().generate(requests, params, progress)
            return
        # The tokenizer is used in this thread only (HF fast tokenizers are not safe to share across threads).
        encoded, _ = fit_prompts(self.tokenizer, requests, None)  # the server refuses what exceeds its context
        stops = stop_token_ids(self.tokenizer)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(self._complete, ids, req, params, stops): (req, ids) for req, ids in encoded}
            for f in as_completed(futures):
                req, ids = futures[f]
                if progress:
                    progress(1)
                yield self._record(req, ids, params, *f.result())

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
        tokenizer = None
        if config.server_prompt == "token_ids":
            from hone.models.loading import load_tokenizer

            tokenizer = load_tokenizer(model, trust_remote_code=config.trust_remote_code)
        return ServerGenerator(server, served, base_url, model, config, tokenizer)
    except BaseException:
        server.stop()
        raise
